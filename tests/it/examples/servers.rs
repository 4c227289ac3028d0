//! Examples that are servers (mreceive --listen, under inetd, tcpserver or systemd socket
//! activation): started on loopback, probed with a message, stopped. Also the password file,
//! which only a running server can judge, fetchmail's POP3 peer, and the Dovecot that
//! dovecot-lda asks for a user's mailbox.

use crate::common::mreceive;
use crate::common::{self, have};
use crate::examples::extract::PASSWD_LINE;
use crate::examples::shell::{Stage, option_value};
use crate::examples::world::{
    Background, MESSAGE, PASSWORD, World, maildir_count, message_files, run_bounded, show,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The recipient an MX example is probed with, and what lands in their Maildir.
pub const PROBE_USER: &str = "bob";

pub fn smtp_session(domain: &str) -> String {
    format!(
        "EHLO client.example.net\r\nMAIL FROM:<ann@example.net>\r\nRCPT TO:<{PROBE_USER}@{domain}>\r\n\
         DATA\r\nFrom: ann@example.net\r\nTo: {PROBE_USER}@{domain}\r\nSubject: probe\r\n\r\nhello\r\n.\r\n\
         QUIT\r\n"
    )
}

/// The replies of a whole session show the message accepted: 354, then 250.
pub fn accepted(replies: &str) -> bool {
    replies
        .split_once("\n354")
        .is_some_and(|(_, after)| after.lines().nth(1).is_some_and(|l| l.starts_with("250")))
}

/// The domain an MX command accepts mail for: its first -d.
pub fn domain_of(args: &[&str]) -> Option<String> {
    option_value(args, &["-d", "--domain"]).map(|d| d.split(',').next().unwrap_or(d).to_string())
}

/// A server example: started in the background, probed with mail on each address it listens
/// on, stopped. An MX must put the probe into the recipient's own Maildir; a submission
/// server must queue what an authenticated user sends.
pub fn run_server_line(w: &World, line: &str, cmd: &str, stage: &Stage) -> Result<(), String> {
    let args = stage.command();
    let mut addrs: Vec<String> = Vec::new();
    let program = stage.program();
    if program == "tcpserver" {
        // tcpserver [opts] HOST PORT PROGRAM…: the host and port become loopback.
        let mut i = 1;
        while i < args.len() && args[i].starts_with('-') {
            let with_value = matches!(
                args[i],
                "-c" | "-C" | "-x" | "-B" | "-g" | "-u" | "-l" | "-b" | "-t" | "-T"
            );
            i += if with_value { 2 } else { 1 };
        }
        if i + 2 >= args.len() {
            return Err(format!("{line}\n  tcpserver without HOST PORT PROGRAM"));
        }
        // tcpserver reads -u and -g as numbers: a name silently becomes 0 (root).
        for flag in ["-u", "-g"] {
            if let Some(v) = option_value(&args[..i], &[flag])
                && !v.starts_with("$(")
                && !v.chars().all(|c| c.is_ascii_digit())
            {
                return Err(format!(
                    "{line}\n  tcpserver {flag} {v}: a number is needed (a name reads as 0)"
                ));
            }
        }
        let port = common::free_port();
        // Words before the program (VAR=value, sudo) are not in `args`.
        let skipped = stage.words.len() - args.len();
        let (host_word, port_word) = (&stage.words[skipped + i], &stage.words[skipped + i + 1]);
        let mut rewritten = cmd.to_string();
        rewritten.replace_range(
            host_word.span.0..port_word.span.1,
            &format!("127.0.0.1 {port}"),
        );
        addrs.push(format!("127.0.0.1:{port}"));
        let tcpserver_program = args[i + 2..].to_vec();
        if !have(&["tcpserver"]) {
            // Outside CI without ucspi-tcp: the program under inetd's contract instead.
            return probe_stdin(w, line, &tcpserver_program);
        }
        return serve_and_probe(w, line, &rewritten, &addrs, &tcpserver_program);
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "-l" || *a == "--listen" {
            addrs.push(it.next().unwrap_or(&"").to_string());
        } else if let Some(v) = a.strip_prefix("--listen=") {
            addrs.push(v.to_string());
        }
    }
    serve_and_probe(w, line, cmd, &addrs, &args)
}

/// Start `cmd` (a server listening on `addrs`, configured by `args`), probe it, stop it.
pub fn serve_and_probe(
    w: &World,
    line: &str,
    cmd: &str,
    addrs: &[String],
    args: &[&str],
) -> Result<(), String> {
    if args.first().is_some_and(|p| p.ends_with("maccess")) {
        pop3_account(w, args)?;
    }
    let mut c = Command::new("bash");
    w.env(&mut c);
    c.args(["-o", "pipefail", "-c", cmd]);
    let server = Background::start(c)?;
    for a in addrs {
        let connected = common::wait_until(Duration::from_secs(10), || {
            TcpStream::connect(a.as_str()).is_ok()
        });
        if !connected {
            return Err(format!(
                "{line}\n  nothing listens on {a}\n  {}",
                server.stop()
            ));
        }
    }
    let result = probe(w, args, addrs);
    let log = server.stop();
    result.map_err(|e| format!("{line}\n  {e}\n  server: {log}"))
}

pub fn probe(w: &World, args: &[&str], addrs: &[String]) -> Result<(), String> {
    let implicit = args.contains(&"--tls-on-connect");
    if args.first().is_some_and(|p| p.ends_with("maccess")) {
        for a in addrs {
            pop3_probe(w, args, a, implicit)?;
        }
        return Ok(());
    }
    if args.contains(&"--submission") {
        let passwd =
            option_value(args, &["-p", "--passwords"]).ok_or("a submission server without -p")?;
        let text = std::fs::read_to_string(w.path(passwd, &w.home))
            .map_err(|e| format!("{passwd}: {e}"))?;
        let user = text
            .lines()
            .next()
            .and_then(|l| l.split(':').next())
            .ok_or("empty password file")?;
        let queue = option_value(args, &["--queue-dir"])
            .map_or(w.home.join(".local/share/mailpipe/queue"), |q| {
                w.path(q, &w.home)
            });
        for a in addrs {
            submit_as(w, a, user, implicit, &queue)?;
        }
        return Ok(());
    }
    let domain = domain_of(args).ok_or("a server with neither -d nor --submission")?;
    for a in addrs {
        let before = message_files(w.root());
        let tcp = TcpStream::connect(a.as_str()).map_err(|e| format!("{a}: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let replies = if implicit {
            talk(mreceive::tls_client(&w.srv.ca, tcp), &domain)
        } else {
            talk(mreceive::Client::new(tcp), &domain)
        };
        if !accepted(&replies) {
            return Err(format!(
                "mail to {PROBE_USER}@{domain} on {a} was not accepted:\n{replies}"
            ));
        }
        check_mailbox(w, &before)?;
    }
    Ok(())
}

/// A maccess example's password file (`-p`), with [`PROBE_USER`] in it: made before the
/// server starts (it reads the file then), as the reader would have made it.
fn pop3_account(w: &World, args: &[&str]) -> Result<(), String> {
    let passwd = option_value(args, &["-p", "--passwords"]).ok_or("maccess without -p")?;
    let passwd = w.path(passwd, &w.home);
    let known = std::fs::read_to_string(&passwd)
        .is_ok_and(|t| t.lines().any(|l| l.starts_with(&format!("{PROBE_USER}:"))));
    if !known {
        std::fs::create_dir_all(passwd.parent().unwrap()).unwrap();
        let line = format!(
            "{PROBE_USER}:{}\n",
            mailpipe::passwd::hash(PASSWORD).unwrap()
        );
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&passwd)
            .unwrap();
        f.write_all(line.as_bytes()).unwrap();
    }
    Ok(())
}

/// A POP3 server example (maccess): [`PROBE_USER`] (added to its password file with
/// [`PASSWORD`] when missing) must get the message put into their Maildir under `-m`, over
/// TLS (STLS, or implicit), and delete it.
fn pop3_probe(w: &World, args: &[&str], addr: &str, implicit: bool) -> Result<(), String> {
    use crate::common::maccess::Pop;
    let base = option_value(args, &["-m", "--maildir-base"]).ok_or("maccess without -m")?;
    pop3_account(w, args)?;
    let maildir = w.path(base, &w.home).join(PROBE_USER).join("Maildir");
    let md = mailpipe::store::maildir::Maildir::open(&maildir).map_err(|e| e.to_string())?;
    md.deliver("", |o| o.write_all(MESSAGE.as_bytes()))
        .map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let tcp = if implicit {
        tcp
    } else {
        let mut plain = Pop::new(tcp);
        let greeting = plain.line();
        let stls = plain.cmd("STLS\r\n");
        if !stls.starts_with("+OK") {
            return Err(format!("{addr}: STLS refused: {greeting}{stls}"));
        }
        plain.into_inner()
    };
    let mut c = Pop::new(mreceive::tls_client(&w.srv.ca, tcp).into_inner());
    let mut said = String::new();
    if implicit {
        said += &c.line();
    }
    for cmd in ["USER bob\r\n", "PASS secret\r\n", "RETR 1\r\n"] {
        said += &c.cmd(cmd);
    }
    let body = c.multi();
    said += &c.cmd("DELE 1\r\n");
    said += &c.cmd("QUIT\r\n");
    let got = body.replace("\r\n", "\n");
    if said.matches("+OK").count() != 6 - usize::from(!implicit) || got != MESSAGE {
        return Err(format!(
            "{addr}: the probe was not fetched and deleted:\n{said}{body}"
        ));
    }
    if crate::common::messages(&maildir).is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{addr}: the probe is still in {}",
            maildir.display()
        ))
    }
}

/// Submit a message as `user` (password [`PASSWORD`]) to the submission server on `addr`;
/// it must land in `queue`.
pub fn submit_as(
    w: &World,
    addr: &str,
    user: &str,
    implicit: bool,
    queue: &Path,
) -> Result<(), String> {
    let (host, port) = addr.rsplit_once(':').ok_or("no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let before = maildir_count(queue);
    let send = format!(
        "msubmit --host {host} --port {port} --tls {} --ca-file {} --user {user} \
         --password-command 'echo {PASSWORD}' someone@elsewhere.test <message.eml",
        if implicit { "implicit" } else { "starttls" },
        w.srv.ca.display()
    );
    let out = w.bash(&send, b"")?;
    if !out.status.success() || maildir_count(queue) <= before {
        return Err(format!(
            "submitting as {user} to {addr} queued nothing\n  {}",
            show(&out)
        ));
    }
    Ok(())
}

/// Lines of a password file: with the elided hashes made real (the password [`PASSWORD`],
/// the scheme and rounds as shown), mreceive must let each user submit.
pub fn run_passwords(w: &World, text: &str) -> Result<(), String> {
    let mut file = String::new();
    let mut users = Vec::new();
    for l in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let c = PASSWD_LINE.captures(l).unwrap();
        if c.get(5).is_some_and(|r| r.as_str() != "5000") {
            return Err(format!("{l}\n  no rule makes a hash with these rounds"));
        }
        let out = Command::new("openssl")
            .args(["passwd", &format!("-{}", &c[3]), PASSWORD])
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        let mut hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !c[4].is_empty() {
            // rounds=5000 is the default: the same digest, written out.
            hash = hash.replacen(
                &format!("${}$", &c[3]),
                &format!("${}$rounds=5000$", &c[3]),
                1,
            );
        }
        file += &format!("{}:{}{hash}{}\n", &c[1], &c[2], &c[6]);
        users.push(c[1].to_string());
    }
    let pw = w.root().join("passwd");
    std::fs::write(&pw, file).unwrap();
    let port = common::free_port();
    let queue = w.root().join("queue");
    let root = w.root().display().to_string();
    // The users may send as the examples' authors (this checks the password file only).
    let trusted: String = users
        .iter()
        .map(|u| format!(" --trusted-sender-login {u}"))
        .collect();
    let cmd = format!(
        "mreceive -l 127.0.0.1:{port} --submission -p {} --tls-cert {root}/etc/ssl/mx.pem \
         --tls-key {root}/etc/ssl/mx.key --queue-dir {}{trusted}",
        pw.display(),
        queue.display()
    );
    let mut c = Command::new("bash");
    w.env(&mut c);
    c.args(["-c", &cmd]);
    let server = Background::start(c)?;
    let addr = format!("127.0.0.1:{port}");
    if !common::wait_until(Duration::from_secs(10), || {
        TcpStream::connect(&addr).is_ok()
    }) {
        return Err(format!(
            "{text}\n  mreceive did not listen\n  {}",
            server.stop()
        ));
    }
    let result = users
        .iter()
        .try_for_each(|u| submit_as(w, &addr, u, false, &queue));
    let log = server.stop();
    result.map_err(|e| format!("{text}\n  {e}\n  mreceive: {log}"))
}

pub fn talk<S: Read + Write>(mut c: mreceive::Client<S>, domain: &str) -> String {
    let mut all = c.reply();
    for l in smtp_session(domain).split_inclusive("\r\n") {
        c.send(l);
        if !(l.starts_with("From:")
            || l.starts_with("To:")
            || l.starts_with("Subject:")
            || l == "\r\n"
            || l == "hello\r\n")
        {
            all += &c.reply();
        }
    }
    all
}

/// The probe went into the recipient's own Maildir, and nowhere else.
pub fn check_mailbox(w: &World, before: &[PathBuf]) -> Result<(), String> {
    let new: Vec<PathBuf> = message_files(w.root())
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    let theirs = |p: &PathBuf| p.to_string_lossy().contains(&format!("/{PROBE_USER}/"));
    if new.len() == 1 && theirs(&new[0]) {
        Ok(())
    } else {
        Err(format!(
            "the message to {PROBE_USER} should be in {PROBE_USER}'s Maildir, once; new files: {new:?}"
        ))
    }
}

/// A server example run under inetd's contract without the server: the program with one SMTP
/// session on standard input.
pub fn probe_stdin(w: &World, line: &str, argv: &[&str]) -> Result<(), String> {
    if argv.first().is_some_and(|p| p.ends_with("maccess")) {
        // No TLS over a pipe for this test's client: the server must start and offer STLS
        // (or, for implicit TLS, wait for a handshake).
        let mut c = Command::new(argv[0]);
        w.env(&mut c);
        c.args(&argv[1..]);
        let out = run_bounded(&mut c, b"CAPA\r\nQUIT\r\n", Duration::from_secs(30))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let tls_first = argv.contains(&"--tls-on-connect");
        return if tls_first || (text.starts_with("+OK") && text.contains("\r\nSTLS\r\n")) {
            Ok(())
        } else {
            Err(format!(
                "{line}\n  no POP3 greeting with STLS\n  {}",
                show(&out)
            ))
        };
    }
    let domain = domain_of(argv).ok_or_else(|| format!("{line}\n  no -d: no rule probes it"))?;
    let before = message_files(w.root());
    let mut c = Command::new(argv[0]);
    w.env(&mut c);
    c.args(&argv[1..]);
    let out = run_bounded(
        &mut c,
        smtp_session(&domain).as_bytes(),
        Duration::from_secs(30),
    )?;
    if !accepted(&String::from_utf8_lossy(&out.stdout)) {
        return Err(format!(
            "{line}\n  the session was not accepted\n  {}",
            show(&out)
        ));
    }
    check_mailbox(w, &before).map_err(|e| format!("{line}\n  {e}"))
}

/// An inetd.conf line: run under inetd -d on a spare loopback port (the service field
/// replaced), else, outside CI, the program under inetd's contract.
pub fn run_inetd(w: &World, line: &str) -> Result<(), String> {
    let line_s = w.substitute(line);
    let f: Vec<&str> = line_s.split_whitespace().collect();
    let (socket, proto, wait, user, program, argv) = (f[1], f[2], f[3], f[4], f[5], &f[6..]);
    if !Path::new(program).is_file() {
        return Err(format!(
            "{line}\n  {program} is not there: inetd needs the absolute path"
        ));
    }
    let mut full = vec![program];
    full.extend(&argv[1..]);
    if !have(&["/usr/sbin/inetd"]) {
        return probe_stdin(w, line, &full);
    }
    let port = common::free_port();
    let conf = w.root().join("inetd.conf");
    std::fs::write(
        &conf,
        format!(
            "127.0.0.1:{port} {socket} {proto} {wait} {user} {program} {}\n",
            argv.join(" ")
        ),
    )
    .unwrap();
    let mut c = Command::new("/usr/sbin/inetd");
    w.env(&mut c);
    c.arg("-d").arg(&conf);
    let server = Background::start(c)?;
    let addr = format!("127.0.0.1:{port}");
    if !common::wait_until(Duration::from_secs(10), || {
        TcpStream::connect(&addr).is_ok()
    }) {
        return Err(format!(
            "{line}\n  inetd did not listen\n  {}",
            server.stop()
        ));
    }
    let result = probe(w, &full, &[addr]);
    let log = server.stop();
    result.map_err(|e| format!("{line}\n  {e}\n  inetd: {log}"))
}

/// systemd units: systemd-analyze verify must pass them without a word; an Accept=yes socket
/// is then run through systemd-socket-activate --inetd, as systemd would.
pub fn run_units(w: &World, units: &[(String, String)]) -> Result<(), String> {
    let shown: String = units.iter().map(|(n, b)| format!("# {n}\n{b}")).collect();
    let dir = w.root().join("units");
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    for (name, body) in units {
        let p = dir.join(name);
        std::fs::write(&p, w.substitute(body)).unwrap();
        paths.push(p);
    }
    if have(&["systemd-analyze"]) {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args(&paths)
            .output()
            .unwrap();
        if !out.status.success() || !out.stderr.is_empty() {
            return Err(format!("{shown}\n  systemd-analyze verify: {}", show(&out)));
        }
    }
    let key = |unit: &str, k: &str| -> Option<String> {
        units
            .iter()
            .find(|(n, _)| n.ends_with(unit))
            .and_then(|(_, b)| {
                b.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}=")).map(String::from))
            })
    };
    // A service of its own (no socket): mrelay --daemon, run as the daemon example is.
    if !units.iter().any(|(n, _)| n.ends_with(".socket")) {
        let exec =
            key(".service", "ExecStart").ok_or_else(|| format!("{shown}\n  no ExecStart="))?;
        let exec = w.substitute(exec.trim_start_matches(['-', '@', '+', '!']));
        let stages = crate::examples::shell::parse_stages(&exec)?;
        if let [s] = stages.as_slice()
            && s.program() == "mrelay"
            && s.args().contains(&"--daemon")
        {
            return crate::examples::runners::run_relay_daemon(w, &shown, s);
        }
        return Err(format!("{shown}\n  no rule runs this service"));
    }
    if key(".socket", "Accept").as_deref() != Some("yes")
        || key(".service", "StandardInput").as_deref() != Some("socket")
    {
        return Err(format!(
            "{shown}\n  only Accept=yes with StandardInput=socket has a rule"
        ));
    }
    let exec = key(".service", "ExecStart").ok_or_else(|| format!("{shown}\n  no ExecStart="))?;
    let exec = w.substitute(exec.trim_start_matches(['-', '@', '+', '!']));
    let argv: Vec<&str> = exec.split_whitespace().collect();
    if !Path::new(argv[0]).is_file() {
        return Err(format!("{shown}\n  {} is not there", argv[0]));
    }
    if !have(&["systemd-socket-activate"]) {
        return probe_stdin(w, &shown, &argv);
    }
    let port = common::free_port();
    let mut c = Command::new("systemd-socket-activate");
    w.env(&mut c);
    c.args(["-l", &format!("127.0.0.1:{port}"), "--inetd", "-a"])
        .args(&argv);
    let server = Background::start(c)?;
    let addr = format!("127.0.0.1:{port}");
    if !common::wait_until(Duration::from_secs(10), || {
        TcpStream::connect(&addr).is_ok()
    }) {
        return Err(format!("{shown}\n  nothing listens\n  {}", server.stop()));
    }
    let result = probe(w, &argv, &[addr]);
    let log = server.stop();
    result.map_err(|e| format!("{shown}\n  {e}\n  systemd-socket-activate: {log}"))
}

pub struct Pop3 {
    pub retrieved: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Pop3 {
    pub fn start(w: &World) -> Result<Pop3, String> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rc = w.home.join(".fetchmailrc");
        std::fs::write(
            &rc,
            format!(
                "set no syslog\npoll 127.0.0.1 service {port} protocol pop3 auth password timeout 10\n  \
                 user bob password {PASSWORD} sslproto '' fetchall\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let retrieved = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = retrieved.clone();
        std::thread::spawn(move || {
            if let Ok((conn, _)) = listener.accept() {
                let _ = pop3_session(conn, &flag);
            }
        });
        Ok(Pop3 { retrieved })
    }

    /// The same server with implicit TLS (RFC 8314) on a port of its own, for mfetch; the
    /// port beside it.
    pub fn start_tls(w: &World) -> Result<(Pop3, u16), String> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = mailpipe::net::tls::server_config(&w.srv.cert, &w.srv.key)
            .map_err(|e| e.to_string())?;
        let retrieved = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = retrieved.clone();
        std::thread::spawn(move || {
            if let Ok((conn, _)) = listener.accept() {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
                let Ok(tls) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let _ = pop3_over(rustls::StreamOwned::new(tls, conn), &flag);
            }
        });
        Ok((Pop3 { retrieved }, port))
    }

    pub fn check(&self) -> Result<(), String> {
        if self.retrieved.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(())
        } else {
            Err("fetchmail never retrieved the message".into())
        }
    }
}

pub fn pop3_session(
    conn: TcpStream,
    retrieved: &std::sync::atomic::AtomicBool,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(20)))?;
    pop3_over(conn, retrieved)
}

/// The session over any stream (TCP, TLS).
fn pop3_over(
    conn: impl Read + Write,
    retrieved: &std::sync::atomic::AtomicBool,
) -> std::io::Result<()> {
    let mut r = BufReader::new(conn);
    let msg = MESSAGE.replace('\n', "\r\n");
    let size = msg.len();
    r.get_mut().write_all(b"+OK test POP3 server ready\r\n")?;
    r.get_mut().flush()?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        let verb = cmd.split_whitespace().next().unwrap_or("");
        let arg = cmd.split_whitespace().nth(1);
        let reply = match (verb, arg) {
            ("CAPA", _) => "+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n".to_string(),
            ("USER" | "PASS" | "NOOP" | "RSET" | "DELE", _) => "+OK\r\n".into(),
            ("STAT", _) => format!("+OK 1 {size}\r\n"),
            ("LIST", None) => format!("+OK\r\n1 {size}\r\n.\r\n"),
            ("LIST", Some(_)) => format!("+OK 1 {size}\r\n"),
            ("UIDL", None) => "+OK\r\n1 q3.1\r\n.\r\n".into(),
            ("UIDL", Some(_)) => "+OK 1 q3.1\r\n".into(),
            ("LAST", _) => "+OK 0\r\n".into(),
            ("RETR" | "TOP", _) => {
                retrieved.store(true, std::sync::atomic::Ordering::SeqCst);
                format!("+OK {size} octets\r\n{msg}.\r\n")
            }
            ("QUIT", _) => {
                r.get_mut().write_all(b"+OK bye\r\n")?;
                r.get_mut().flush()?;
                return Ok(());
            }
            _ => "-ERR not here\r\n".into(),
        };
        r.get_mut().write_all(reply.as_bytes())?;
        r.get_mut().flush()?;
    }
}

/// A private Dovecot (tests/peers/start-dovecot.sh) in a world's root, for an example that
/// hands mail to dovecot-lda: `dovecot-lda -d USER` asks Dovecot's auth service where USER's
/// mailbox is, so a configuration file alone is not enough, a running Dovecot is needed. Its
/// configuration is where the example's dovecot-lda reads it (`world::DOVECOT_CONF`); the
/// mail of [`PROBE_USER`] goes to ROOT/dovecot/mail/bob/Maildir. Stopped on drop.
pub struct Dovecot {
    state: PathBuf,
}

impl Dovecot {
    /// Started; `None` (with a note on stderr) outside CI when Dovecot is not installed or the
    /// test does not run as root, which the peer needs (it switches to the mailbox owner).
    pub fn start(w: &World) -> Result<Option<Dovecot>, String> {
        if !have(&["dovecot", "/usr/lib/dovecot/dovecot-lda"]) {
            return Ok(None);
        }
        if !common::is_root() {
            if common::in_ci() {
                return Err("Dovecot's LDA needs a Dovecot started as root".into());
            }
            eprintln!("SKIPPED: Dovecot's LDA needs a Dovecot started as root");
            return Ok(None);
        }
        // Dovecot's processes run as other users: they must reach the state directory.
        std::fs::set_permissions(
            w.root(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .map_err(|e| format!("{}: {e}", w.root().display()))?;
        let state = w.root().join("dovecot");
        let peers = crate::examples::project().join("tests/peers");
        let port = |_| common::free_port().to_string();
        let [imap, imaps, pop3, pop3s] = [0; 4].map(port);
        let out = Command::new("bash")
            .arg(peers.join("start-dovecot.sh"))
            .arg(&state)
            .arg("127.0.0.1")
            .env("IMAP_PORT", imap)
            .env("IMAPS_PORT", imaps)
            .env("POP3_PORT", pop3)
            .env("POP3S_PORT", pop3s)
            .env("DOVECOT_USERS", format!("{PROBE_USER}:{PASSWORD}"))
            .output()
            .map_err(|e| format!("start-dovecot.sh: {e}"))?;
        // From here on a partly started Dovecot is stopped by drop.
        let dovecot = Dovecot { state };
        if !out.status.success() {
            return Err(format!("start-dovecot.sh: {}", show(&out)));
        }
        let conf = w.root().join(crate::examples::world::DOVECOT_CONF);
        std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(dovecot.state.join("dovecot/dovecot.conf"), &conf)
            .map_err(|e| format!("{}: {e}", conf.display()))?;
        Ok(Some(dovecot))
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(crate::examples::project().join("tests/peers/stop.sh"))
            .arg(&self.state)
            .output();
    }
}
