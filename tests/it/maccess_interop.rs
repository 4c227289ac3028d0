//! maccess against the POP3 clients people use: Python's poplib (STLS and implicit TLS),
//! curl's pop3:// and pop3s://, mpop, fetchmail and getmail6, each fetching and deleting a
//! Maildir seeded by tests/peers/seed-maildir.sh plus awkward messages (dots at line
//! starts, a 990-octet line, 8-bit text, an empty body). Every message must arrive
//! byte-identical (line ends aside: POP3 sends CRLF, what a client stores is its choice),
//! and the Maildir must be empty after the client's QUIT. A missing client skips outside CI
//! and fails in CI.

use crate::common::maccess::{Maccess, normalized};
use crate::common::{files, have, messages};
use std::path::Path;
use std::process::Command;

/// How many seed-script messages each client fetches (beside the awkward ones).
const N: usize = 20;

/// Every file under `dir` (a Maildir's new/ and cur/ or a flat directory), read.
fn stored(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths = files(dir);
    paths.extend(messages(dir));
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Run `cmd`; panic with its output unless it succeeded.
fn ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The client's haul must be the seeded messages, and the Maildir empty.
fn check(m: &Maccess, seeded: &[Vec<u8>], out: &Path, client: &str) {
    let got = normalized(stored(out));
    assert_eq!(got.len(), seeded.len(), "{client}: message count");
    for (g, s) in got.iter().zip(seeded) {
        assert!(
            g == s,
            "{client}: a message differs:\n{}\n---- expected ----\n{}",
            String::from_utf8_lossy(g),
            String::from_utf8_lossy(s)
        );
    }
    assert!(
        messages(&m.maildir()).is_empty(),
        "{client}: not all deleted"
    );
}

const POPLIB: &str = r#"
import os, poplib, ssl, sys
poplib._MAXLINE = 1 << 20
host, port, mode, ca, out = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
if mode == "stls":
    p = poplib.POP3(host, int(port), timeout=30)
    p.stls(context=ctx)
else:
    p = poplib.POP3_SSL(host, int(port), context=ctx, timeout=30)
p.user("alice")
p.pass_("secret")
n, _ = p.stat()
for i in range(1, n + 1):
    resp, lines, octets = p.retr(i)
    with open(os.path.join(out, str(i)), "wb") as f:
        f.write(b"".join(l + b"\n" for l in lines))
    p.dele(i)
p.quit()
"#;

#[test]
fn python_poplib_fetches_and_deletes() {
    if !have(&["python3"]) {
        return;
    }
    for mode in ["stls", "implicit"] {
        let m = Maccess::start(&[]);
        let seeded = m.seed(N);
        let out = m.dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let port = if mode == "stls" { m.port } else { m.tls_port };
        ok(
            Command::new("python3")
                .args(["-c", POPLIB, "localhost", &port.to_string(), mode])
                .arg(&m.ca)
                .arg(&out),
            "poplib",
        );
        check(&m, &seeded, &out, &format!("poplib {mode}"));
    }
}

#[test]
fn curl_fetches_and_deletes() {
    if !have(&["curl"]) {
        return;
    }
    for scheme in ["pop3", "pop3s"] {
        let m = Maccess::start(&[]);
        let seeded = m.seed(N);
        let out = m.dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let port = if scheme == "pop3" { m.port } else { m.tls_port };
        let base = format!("{scheme}://localhost:{port}");
        let curl = || {
            let mut c = Command::new("curl");
            c.args(["-sS", "--ssl-reqd", "-u", "alice:secret", "--cacert"])
                .arg(&m.ca);
            c
        };
        let n = seeded.len();
        // One connection for every URL (curl reuses it): the numbers stay the session's.
        ok(
            curl()
                .arg(format!("{base}/[1-{n}]"))
                .arg("-o")
                .arg(out.join("#1")),
            "curl RETR",
        );
        ok(
            curl()
                .args(["-X", "DELE", "-I"])
                .arg(format!("{base}/[1-{n}]")),
            "curl DELE",
        );
        check(&m, &seeded, &out, scheme);
    }
}

#[test]
fn mpop_fetches_and_deletes() {
    if !have(&["mpop"]) {
        return;
    }
    let m = Maccess::start(&[]);
    let seeded = m.seed(N);
    let out = m.dir.path().join("out");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(out.join(sub)).unwrap();
    }
    let conf = m.dir.path().join("mpoprc");
    std::fs::write(
        &conf,
        format!(
            "account default\nhost localhost\nport {}\ntls on\ntls_starttls on\n\
             tls_trust_file {}\nauth user\nuser alice\npassword secret\n\
             delivery maildir {}\nkeep off\nreceived_header off\nuidls_file {}\n",
            m.port,
            m.ca.display(),
            out.display(),
            m.dir.path().join("uidls").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(Command::new("mpop").arg("-C").arg(&conf).arg("-q"), "mpop");
    check(&m, &seeded, &out, "mpop");
}

#[test]
fn fetchmail_fetches_and_deletes() {
    if !have(&["fetchmail"]) {
        return;
    }
    let m = Maccess::start(&[]);
    let seeded = m.seed(N);
    let out = m.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let rc = m.dir.path().join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\n\
             poll localhost service {} protocol POP3 auth password\n  \
             user alice there with password \"secret\" is root here\n  \
             sslproto TLS1.2+ sslcertck sslcertfile \"{}\"\n  \
             mda \"sh -c 'cat > {}/$$'\"\n  no keep fetchall\n",
            m.port,
            m.ca.display(),
            out.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(
        Command::new("fetchmail")
            .env("HOME", m.dir.path())
            .env("FETCHMAILUSER", "root")
            .arg("-f")
            .arg(&rc)
            .arg("--invisible")
            .arg("--idfile")
            .arg(m.dir.path().join("fetchids"))
            .arg("--pidfile")
            .arg(m.dir.path().join("fetchmail.pid")),
        "fetchmail",
    );
    check(&m, &seeded, &out, "fetchmail");
}

#[test]
fn getmail6_fetches_and_deletes() {
    if !have(&["getmail"]) {
        return;
    }
    let m = Maccess::start(&[]);
    let seeded = m.seed(N);
    let out = m.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // An external MDA, not getmail's Maildir: that refuses to deliver as root (CI's user).
    let rc = m.dir.path().join("getmailrc");
    std::fs::write(
        &rc,
        format!(
            "[retriever]\ntype = SimplePOP3SSLRetriever\nserver = localhost\nport = {}\n\
             username = alice\npassword = secret\nca_certs = {}\n\n\
             [destination]\ntype = MDA_external\npath = /bin/sh\n\
             arguments = (\"-c\", \"cat > {}/$$\")\nallow_root_commands = true\n\n\
             [options]\nread_all = true\ndelete = true\ndelivered_to = false\n\
             received = false\nverbose = 0\n",
            m.tls_port,
            m.ca.display(),
            out.display()
        ),
    )
    .unwrap();
    ok(
        Command::new("getmail")
            .arg(format!("--rcfile={}", rc.display()))
            .arg(format!("--getmaildir={}", m.dir.path().display())),
        "getmail",
    );
    check(&m, &seeded, &out, "getmail6");
}
