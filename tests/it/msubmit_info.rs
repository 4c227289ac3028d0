//! msubmit's `--pretend` (msmtp's -P: the settings a message would go with, never the
//! password) and `--serverinfo` (msmtp's -S: what a server says and offers, against
//! mreceive with STARTTLS and AUTH, and a scripted fake).

use crate::common;
use crate::common::smtp;

use common::mreceive::Server;
use common::*;
use smtp::*;
use std::path::Path;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `key = value` in `--pretend`'s output.
fn value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(" = "))
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

fn config(home: &Path, text: &str) -> std::path::PathBuf {
    write(&home.join(".config/mailpipe/config"), text)
}

#[test]
fn pretend_shows_the_settings_and_never_the_password() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let ran = t.path().join("ran");
    let aliases = write(&t.path().join("aliases"), "root: admin@example.org\n");
    let path = config(
        t.path(),
        &format!(
            "defaults\nhost 127.0.0.1\nport {}\ntls may\n\
             account work\nhost smtp.example.org\nport 465\ntls implicit\nuser me\n\
             passwordeval \"touch {}; cat pw.txt\"\nfrom me@example.org\naliases {}\n\
             proxy_host 127.0.0.1\nproxy_user p\nproxy_password hidden-proxy\n\
             account plain : work\nfrom other@example.org\npassword hidden-secret\npasswordeval\n",
            fake.port(),
            ran.display(),
            aliases.display()
        ),
    );
    let pretend = |args: &[&str]| {
        let out = run(
            tool(bin!("msubmit"), t.path()).arg("--pretend").args(args),
            b"",
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        stdout(&out)
    };
    // The account chosen by the sender address, the flags over it.
    let text = pretend(&["-f", "me@example.org", "--port", "2465", "root", "bob"]);
    assert_eq!(value(&text, "configuration"), path.display().to_string());
    assert_eq!(value(&text, "account"), "work (its from is the sender)");
    assert_eq!(value(&text, "host"), "smtp.example.org");
    assert_eq!(value(&text, "port"), "2465");
    assert_eq!(
        value(&text, "tls"),
        "implicit (implicit TLS, required; the certificate verified)"
    );
    assert_eq!(value(&text, "auth"), "on (PLAIN, else LOGIN)");
    assert_eq!(value(&text, "user"), "me");
    assert!(
        value(&text, "password").starts_with("from passwordeval \"touch "),
        "{text}"
    );
    assert_eq!(
        value(&text, "proxy"),
        "127.0.0.1:1080 (user p, its password not shown)"
    );
    assert_eq!(
        value(&text, "recipients"),
        "admin@example.org, bob@example.org"
    );
    assert!(!ran.exists(), "the password command was run");
    assert!(
        !text.contains("s3cret") && !text.contains("hidden"),
        "{text}"
    );
    // A password written in the file is not shown either.
    let text = pretend(&["-a", "plain", "-t"]);
    assert_eq!(value(&text, "account"), "plain (-a)");
    assert_eq!(
        value(&text, "password"),
        "in the configuration file (not shown)"
    );
    assert!(!text.contains("hidden"), "{text}");
    assert!(value(&text, "recipients").contains("-t"), "{text}");
    // The defaults: nothing was sent or connected to.
    let text = pretend(&[]);
    assert_eq!(
        value(&text, "account"),
        "(none: the defaults and the flags)"
    );
    assert!(
        value(&text, "tls").starts_with("may (STARTTLS if offered"),
        "{text}"
    );
    assert_eq!(value(&text, "password"), "(not set)");
    assert!(fake.peers.lock().unwrap().is_empty());
    // A configuration error is the one a submission meets.
    config(t.path(), "hots x\n");
    let out = run(tool(bin!("msubmit"), t.path()).arg("--pretend"), b"");
    assert_eq!(code(&out), 78, "{}", stderr(&out));
}

#[test]
fn serverinfo_shows_greeting_tls_certificate_and_what_is_offered() {
    let server = Server::start(&[]);
    let t = tempfile::tempdir().unwrap();
    let ran = t.path().join("ran");
    // The account's login is not used, and its password command not run.
    config(
        t.path(),
        &format!(
            "host 127.0.0.1\nport {}\ntls_trust_file {}\nuser alice\n\
             passwordeval \"touch {}; echo secret\"\n",
            server.port,
            server.ca.display(),
            ran.display()
        ),
    );
    let out = run(
        tool(bin!("msubmit"), t.path()).args(["--serverinfo", "-v"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let cert = std::fs::read_to_string(server.dir.path().join("cert.pem")).unwrap();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
        .unwrap();
    let fp = mailpipe::net::tls::fingerprint_hex(&der);
    for want in [
        format!("SMTP server at 127.0.0.1, port {}:", server.port),
        "    mx.local.test".to_string(),
        "TLS session:\n    protocol TLSv1_3, cipher suite TLS13_".to_string(),
        "    the certificate verified".to_string(),
        "    subject: CN=localhost".to_string(),
        "    issuer: CN=mailpipe test CA".to_string(),
        "    valid from: ".to_string(),
        "    names: localhost, 127.0.0.1, ::1".to_string(),
        format!("    SHA-256 fingerprint: {fp}"),
        "    SIZE ".to_string(),
        "    PIPELINING:\n".to_string(),
        "    AUTH:\n        Supported authentication methods: PLAIN LOGIN".to_string(),
        "This server might advertise more or other properties when not using TLS.".to_string(),
    ] {
        assert!(text.contains(&want), "{want:?} missing in:\n{text}");
    }
    // No login, no transaction: EHLO, STARTTLS, EHLO, QUIT.
    let said: Vec<String> = stderr(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("msubmit: --> "))
        .map(|l| l.split(' ').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        said,
        ["EHLO", "STARTTLS", "EHLO", "QUIT"],
        "{}",
        stderr(&out)
    );
    assert!(!ran.exists());
    // A certificate that does not verify is refused as in a submission; at encrypt it is
    // shown.
    config(t.path(), &format!("host 127.0.0.1\nport {}\n", server.port));
    let out = run(tool(bin!("msubmit"), t.path()).arg("--serverinfo"), b"");
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    let out = run(
        tool(bin!("msubmit"), t.path()).args(["--serverinfo", "--tls", "encrypt"]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("the certificate not verified (tls may or encrypt)"));
    assert!(stdout(&out).contains(&format!("SHA-256 fingerprint: {fp}")));
}

#[test]
fn serverinfo_in_clear_text_says_so() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let out = run(
        tool(bin!("msubmit"), t.path()).args([
            "-S",
            "--host",
            "127.0.0.1",
            "--port",
            &fake.port().to_string(),
            "--tls",
            "none",
        ]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("    fake.test ESMTP\nTLS:\n    not used (tls none)\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "    SIZE 1000000:\n        Maximum message size is 1000000 bytes = 0.95 MiB\n"
        ),
        "{text}"
    );
    assert!(text.contains("    8BITMIME:"), "{text}");
    assert!(text.contains("    AUTH:\n        Not offered"), "{text}");
    let log = fake.log_text();
    assert!(!log.contains("MAIL") && !log.contains("AUTH"), "{log}");
    // Recipients make no sense with it.
    let out = run(
        tool(bin!("msubmit"), t.path()).args(["-S", "--host", "h", "b@b.test"]),
        b"",
    );
    assert_eq!(code(&out), 64, "{}", stderr(&out));
}
