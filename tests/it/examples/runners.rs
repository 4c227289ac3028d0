//! One runner per kind of example: shell lines, crontab lines, Postfix main.cf and master.cf,
//! our configuration and rules files, address lists, .pinerc lines, make targets.

use crate::common::have;
use crate::examples::extract::{Example, Kind, first_word};
use crate::examples::project;
use crate::examples::servers::{
    Dovecot, Pop3, accepted, run_inetd, run_passwords, run_server_line, run_units, smtp_session,
};
use crate::examples::shell::{Expect, Stage, Word, expectations, parse_stages};
use crate::examples::world::{MESSAGE, PASSWORD, World, bin_dir, run_bounded, run_checked, show};
use regex::Regex;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

/// Run one example with the runner of its kind.
pub fn run_example(w: &World, ex: &Example) -> Result<(), String> {
    match &ex.kind {
        Kind::Shell(line) => run_shell(w, line),
        Kind::Cron(line) => run_cron(w, line),
        Kind::Inetd(line) => run_inetd(w, line),
        Kind::MainCf(lines) => run_main_cf(w, lines),
        Kind::MasterCf(text) => run_postfix(w, "", text),
        Kind::Postfix(main, master) => run_postfix(w, main, master),
        Kind::Exim(text) => run_exim(w, text),
        Kind::Smtpd(text) => run_smtpd(w, text),
        Kind::Units(units) => run_units(w, units),
        Kind::Config(text) => run_config(w, text),
        Kind::Rules(text) => run_rules(w, text),
        Kind::Passwords(text) => run_passwords(w, text),
        Kind::SenderMap(text) => run_sender_map(w, text),
        Kind::Addresses(list) => run_addresses(w, list),
        Kind::Pinerc(key, value) => run_pinerc(w, key, value),
        Kind::Make(words) => run_make(w, words),
        Kind::Log(text) => crate::examples::logs::run_log(w, text),
        Kind::DemoOutput(text) => run_demo_output(w, text),
    }
}

/// The demo's output as the README shows it: the script is run, and each line shown (ports
/// and sizes aside: every number stands for any) must be a line it printed, in order.
fn run_demo_output(w: &World, text: &str) -> Result<(), String> {
    let mut c = Command::new("bash");
    w.env(&mut c);
    c.current_dir(project())
        .arg("demo/five-steps.sh")
        .arg(bin_dir());
    let out = run_bounded(&mut c, b"", std::time::Duration::from_secs(60))?;
    if !out.status.success() {
        return Err(format!("demo/five-steps.sh\n  {}", show(&out)));
    }
    static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[0-9]+").unwrap());
    let norm = |l: &str| NUMBER.replace_all(l.trim_end(), "N").into_owned();
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(norm)
        .collect();
    let mut at = 0;
    for shown in text.lines().filter(|l| l.trim() != "...") {
        let want = norm(shown);
        match printed[at..].iter().position(|l| *l == want) {
            Some(i) => at += i + 1,
            None => {
                return Err(format!(
                    "demo output: {shown:?} is not what demo/five-steps.sh prints (in order):\n{}",
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
        }
    }
    Ok(())
}

/// A shell line: a server runs in the background and is probed; anything else runs with
/// bash -o pipefail and must have the effect its programs promise (see `expectations`).
pub fn run_shell(w: &World, line: &str) -> Result<(), String> {
    let cmd = w.substitute(line);
    let stages = parse_stages(&cmd)?;
    let _dovecot = if cmd.contains("/dovecot-lda") {
        match Dovecot::start(w).map_err(|e| format!("{line}\n  {e}"))? {
            Some(d) => Some(d),
            None => return Ok(()),
        }
    } else {
        None
    };
    if let Some(s) = stages.iter().find(|s| {
        let p = s.program();
        p == "tcpserver"
            || (p == "mreceive" || p == "maccess")
                && s.args().iter().any(|a| *a == "-l" || *a == "--listen")
    }) {
        if stages.len() != 1 {
            return Err(format!("{line}\n  a server in a pipeline: no rule runs it"));
        }
        return run_server_line(w, line, &cmd, s);
    }
    if let Some(s) = stages
        .iter()
        .find(|s| s.program() == "mrelay" && s.args().contains(&"--daemon"))
    {
        if stages.len() != 1 {
            return Err(format!("{line}\n  a daemon in a pipeline: no rule runs it"));
        }
        return run_relay_daemon(w, line, s);
    }
    if stages
        .iter()
        .any(|s| s.program() == "maccess" || s.program() == "mreceive")
        && !cmd.contains("--hash-password")
    {
        return Err(format!(
            "{line}\n  a server on stdin in a shell line: no rule runs it"
        ));
    }
    let expects = expectations(&stages, &w.home, &w.home).map_err(|e| format!("{line}\n  {e}"))?;
    let (_mfetch_pop, cmd) = with_pop3s(w, &cmd)?;
    let mut pop = None;
    if stages.iter().any(|s| s.program() == "fetchmail") {
        pop = Some(Pop3::start(w)?);
    }
    let stdin = if cmd.contains("--hash-password") {
        format!("{PASSWORD}\n")
    } else {
        String::new()
    };
    run_checked(w, line, &expects, || w.bash(&cmd, stdin.as_bytes()))?;
    if let Some(pop) = pop {
        pop.check()?;
    }
    for e in &expects {
        if let Expect::Link(target, link) = e
            && target.ends_with("msubmit")
        {
            check_sendmail_link(w, link).map_err(|e| format!("{line}\n  {e}"))?;
        }
    }
    Ok(())
}

/// `mrelay --daemon`: started in the background, it must send a message queued after it
/// started (within a few seconds: it watches the queue) and stop with exit 0 on SIGTERM.
pub fn run_relay_daemon(w: &World, line: &str, stage: &Stage) -> Result<(), String> {
    let mut c = Command::new(bin_dir().join("mrelay"));
    w.env(&mut c);
    c.args(&stage.command()[1..]);
    let daemon = crate::examples::world::Background::start(c)?;
    std::thread::sleep(Duration::from_millis(300));
    // The daemon's queue: its --queue-dir (a system service's), else the user's default.
    let q = crate::examples::shell::option_value(&stage.command(), &["--queue-dir"])
        .map_or(w.home.join(".local/share/mailpipe/queue"), |q| {
            w.path(q, &w.home)
        });
    let queue = &format!(
        "mrelay --queue-only --queue-dir {} -f me@example.org bob@example.org <message.eml",
        q.display()
    );
    let before = w.srv.count();
    // No Expect::Queued: the daemon may have sent it before the queue is looked at; the
    // server's count below is the proof (nothing else sends).
    run_checked(w, queue, &[], || w.bash(queue, b"")).map_err(|e| format!("{line}\n  {e}"))?;
    let sent = crate::common::wait_until(Duration::from_secs(10), || {
        w.srv.count() > before && crate::examples::world::maildir_count(&q) == 0
    });
    let ended = daemon.stop();
    if !sent || !ended.starts_with("stopped (exit status: 0)") {
        return Err(format!(
            "{line}\n  the daemon should send what is queued and stop on SIGTERM: {} {ended}",
            if sent { "sent," } else { "nothing sent," }
        ));
    }
    Ok(())
}

/// The point of a link to msubmit: programs run it by that name and get what sendmail's link
/// of the name does. A name no rule knows fails: nobody checked what it does.
pub fn check_sendmail_link(w: &World, link: &Path) -> Result<(), String> {
    let name = link.file_name().map(|n| n.to_string_lossy().into_owned());
    let link = link.display();
    match name.as_deref() {
        Some("sendmail") => {
            let send = format!("{link} -i -t <message.eml");
            run_checked(w, &send, &[Expect::Sent], || w.bash(&send, b"")).map(drop)
        }
        Some("mailq") => {
            // A queue with a message in it: mailq shows what msubmit -bp shows, that message.
            let queue = "msubmit --queue -t <message.eml";
            let queued = w.home.join(".local/share/mailpipe/queue");
            run_checked(w, queue, &[Expect::Queued(queued)], || w.bash(queue, b""))?;
            let mailq = run_checked(w, &link.to_string(), &[], || w.bash(&link.to_string(), b""))?;
            let bp = run_checked(w, "msubmit -bp", &[], || w.bash("msubmit -bp", b""))?;
            let listed = String::from_utf8_lossy(&mailq.stdout);
            if mailq.stdout != bp.stdout || !listed.contains("bob@example.org") {
                return Err(format!(
                    "{link} should list the queue as msubmit -bp does\n  {}\n  msubmit -bp: {}",
                    show(&mailq),
                    show(&bp)
                ));
            }
            Ok(())
        }
        Some("newaliases") => {
            // Package scripts run it after editing /etc/aliases: it must succeed, quietly.
            let out = run_checked(w, &link.to_string(), &[], || w.bash(&link.to_string(), b""))?;
            if !out.stdout.is_empty() || !out.stderr.is_empty() {
                return Err(format!("{link} should exit 0 quietly\n  {}", show(&out)));
            }
            Ok(())
        }
        _ => Err(format!("no rule says what msubmit run as {link} should do")),
    }
}

/// mfetch's server: for a line that fetches from 127.0.0.1 (an example's pop.example.org), a
/// POP3 server with implicit TLS (the test CA's certificate) serving one message, and the
/// line with its port.
fn with_pop3s(w: &World, cmd: &str) -> Result<(Option<Pop3>, String), String> {
    if !cmd.contains("--pop3 127.0.0.1") {
        return Ok((None, cmd.to_string()));
    }
    let (pop, port) = Pop3::start_tls(w)?;
    let cmd = cmd.replace("--pop3 127.0.0.1", &format!("--pop3 127.0.0.1:{port}"));
    Ok((Some(pop), cmd))
}

/// A crontab line: checked by cron's own `crontab -n`, its command run as cron runs it.
pub fn run_cron(w: &World, line: &str) -> Result<(), String> {
    let file = w.root().join("crontab");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    if have(&["crontab"]) {
        let out = Command::new("crontab")
            .arg("-n")
            .arg(&file)
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(format!("{line}\n  crontab -n: {}", show(&out)));
        }
    }
    let fields = if line.starts_with('@') { 1 } else { 5 };
    let command: String = {
        let mut rest = line.trim_start();
        for _ in 0..fields {
            rest = rest
                .split_once(char::is_whitespace)
                .map_or("", |r| r.1)
                .trim_start();
        }
        rest.to_string()
    };
    if command.contains('%') {
        return Err(format!(
            "{line}\n  cron turns % into a newline: no rule runs it"
        ));
    }
    // cron's PATH is /usr/bin:/bin: a bare name finds another program or none.
    for s in parse_stages(&command)? {
        if let Some(p) = s.command().first()
            && [
                "mcompose", "msubmit", "mrelay", "mreceive", "mdeliver", "mfetch",
            ]
            .contains(p)
        {
            return Err(format!(
                "{line}\n  cron runs commands with PATH=/usr/bin:/bin: give {p}'s absolute path"
            ));
        }
    }
    let cmd = w.substitute(&command);
    let expects = expectations(&parse_stages(&cmd)?, &w.home, &w.home)?;
    let (_pop, cmd) = with_pop3s(w, &cmd)?;
    run_checked(w, line, &expects, || {
        let mut c = Command::new("/bin/sh");
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &w.home)
            .env("LOGNAME", "me")
            .env("SHELL", "/bin/sh")
            .current_dir(&w.home)
            .args(["-c", &cmd]);
        run_bounded(&mut c, b"", Duration::from_secs(30))
    })
    .map(drop)
}

/// Postfix main.cf lines: postconf must read them without a warning (an unknown parameter is
/// one). A mailbox_command is then run the way local(8) runs it for user bob.
pub fn run_main_cf(w: &World, lines: &[String]) -> Result<(), String> {
    let shown = lines.join("\n");
    let dir = w.root().join("postfix-main");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.cf"), format!("{shown}\n")).unwrap();
    std::fs::write(dir.join("master.cf"), "").unwrap();
    postconf(&shown, &dir, &["-n"])?;
    for l in lines {
        let (key, value) = l.split_once('=').unwrap();
        if key.trim() != "mailbox_command" {
            continue;
        }
        let value = value.trim();
        if !value.starts_with('/') {
            return Err(format!(
                "{l}\n  local(8) runs it with PATH=/usr/bin:/bin: give the absolute path"
            ));
        }
        let cmd = w.substitute(value);
        let bob = w.root().join("home/bob");
        let expects = expectations(&parse_stages(&cmd)?, &bob, &bob)?;
        // local(8): a From_ line, X-Original-To:, Delivered-To:, Return-Path:, then the message;
        // the recipient's HOME, USER, SENDER, RECIPIENT… in the environment.
        let mut stdin =
            b"From ann@example.net  Mon Jan  1 10:00:00 2024\nX-Original-To: bob@example.org\n\
            Delivered-To: bob@example.org\nReturn-Path: <ann@example.net>\n"
                .to_vec();
        stdin.extend_from_slice(MESSAGE.as_bytes());
        run_checked(w, l, &expects, || {
            let mut c = Command::new("/bin/sh");
            c.env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("HOME", &bob)
                .env("USER", "bob")
                .env("LOGNAME", "bob")
                .env("SHELL", "/bin/sh")
                .env("SENDER", "ann@example.net")
                .env("RECIPIENT", "bob@example.org")
                .env("ORIGINAL_RECIPIENT", "bob@example.org")
                .env("LOCAL", "bob")
                .env("DOMAIN", "example.org")
                .env("EXTENSION", "")
                .current_dir(&bob)
                .args(["-c", &cmd]);
            run_bounded(&mut c, &stdin, Duration::from_secs(30))
        })?;
    }
    Ok(())
}

pub fn postconf(shown: &str, dir: &Path, args: &[&str]) -> Result<(), String> {
    if !have(&["/usr/sbin/postconf"]) {
        return Ok(());
    }
    let out = Command::new("/usr/sbin/postconf")
        .arg("-c")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(format!(
            "{shown}\n  postconf {}: {}",
            args.join(" "),
            show(&out)
        ));
    }
    Ok(())
}

/// Postfix master.cf entries, with the main.cf lines shown beside them (a
/// `SERVICE_destination_recipient_limit` is a warning without its service): postconf -M and
/// -n must read them without a word; a pipe(8) service is then run the way pipe(8) runs it
/// (argv without a shell, ${…} expanded, flags honoured) for bob.
pub fn run_postfix(w: &World, main: &str, text: &str) -> Result<(), String> {
    let dir = w.root().join("postfix-master");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.cf"), main).unwrap();
    std::fs::write(dir.join("master.cf"), format!("{text}\n")).unwrap();
    let shown = format!("{main}{text}");
    postconf(&shown, &dir, &["-M"])?;
    postconf(&shown, &dir, &["-n"])?;
    // Entries: a line at column 0, continued by indented lines.
    let mut entries: Vec<String> = Vec::new();
    for l in text.lines() {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        match entries.last_mut() {
            Some(e) if l.starts_with(char::is_whitespace) => {
                e.push(' ');
                e.push_str(l.trim());
            }
            _ => entries.push(l.to_string()),
        }
    }
    for e in entries {
        let f: Vec<&str> = e.split_whitespace().collect();
        if f.get(7) != Some(&"pipe") {
            continue;
        }
        let mut flags = "";
        let mut argv: Vec<String> = Vec::new();
        for (i, a) in f[8..].iter().enumerate() {
            if let Some(v) = a.strip_prefix("flags=") {
                flags = v;
            } else if let Some(v) = a.strip_prefix("argv=") {
                argv.push(v.to_string());
                argv.extend(f[8 + i + 1..].iter().map(|s| s.to_string()));
                break;
            }
        }
        if argv.is_empty() {
            return Err(format!("{e}\n  a pipe service without argv="));
        }
        if !argv[0].starts_with('/') {
            return Err(format!(
                "{e}\n  pipe(8) needs the absolute path of the command"
            ));
        }
        let expand = |a: &str| {
            a.replace("${sender}", "ann@example.net")
                .replace("${recipient}", "bob@example.org")
                .replace("${original_recipient}", "bob@example.org")
                .replace("${user}", "bob")
                .replace("${mailbox}", "bob")
                .replace("${domain}", "example.org")
                .replace("${nexthop}", "example.org")
                .replace("${extension}", "")
        };
        let argv: Vec<String> = argv.iter().map(|a| w.substitute(&expand(a))).collect();
        if let Some(left) = argv.iter().find(|a| a.contains("${")) {
            return Err(format!("{e}\n  no rule expands {left}"));
        }
        let stage = Stage {
            words: argv
                .iter()
                .map(|a| Word {
                    text: a.clone(),
                    span: (0, 0),
                })
                .collect(),
            ..Stage::default()
        };
        let bob = w.root().join("home/bob");
        let expects = expectations(&[stage], &bob, &bob)?;
        let mut stdin = Vec::new();
        for (flag, line) in [
            ('F', "From ann@example.net  Mon Jan  1 10:00:00 2024\n"),
            ('O', "X-Original-To: bob@example.org\n"),
            ('D', "Delivered-To: bob@example.org\n"),
            ('R', "Return-Path: <ann@example.net>\n"),
        ] {
            if flags.contains(flag) {
                stdin.extend_from_slice(line.as_bytes());
            }
        }
        stdin.extend_from_slice(MESSAGE.as_bytes());
        run_checked(w, &e, &expects, || {
            let mut c = Command::new(&argv[0]);
            c.env_clear().env("PATH", "/usr/bin:/bin").args(&argv[1..]);
            run_bounded(&mut c, &stdin, Duration::from_secs(30))
        })?;
    }
    Ok(())
}

/// A configuration file for our tools: every account sends through msubmit, a maildir
/// receives through mdeliver, and mdeliver reads it without a word on stderr.
pub fn run_config(w: &World, text: &str) -> Result<(), String> {
    static HOST: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?m)^(\s*host\s+)\S+\s*$").unwrap());
    static PORT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?m)^(\s*port\s+)(\d+)\s*$").unwrap());
    let implicit = Regex::new(r"(?m)^\s*(tls\s+implicit|tls_starttls\s+off)\s*$")
        .unwrap()
        .is_match(text);
    let default_port = if implicit {
        w.srv.implicit
    } else {
        w.srv.starttls
    };
    let has_port = PORT.is_match(text);
    let body = w.substitute(text);
    let body = PORT.replace_all(&body, |c: &regex::Captures| {
        let p = if &c[2] == "465" {
            w.srv.implicit
        } else {
            w.srv.starttls
        };
        format!("{}{p}", &c[1])
    });
    let body = HOST.replace_all(&body, |c: &regex::Captures| {
        let port = if has_port {
            String::new()
        } else {
            format!("\nport {default_port}")
        };
        format!("{}127.0.0.1{port}", &c[1])
    });
    let file = w.root().join("config");
    std::fs::write(
        &file,
        format!("tls_trust_file {}\n{body}\n", w.srv.ca.display()),
    )
    .unwrap();
    let f = file.display();
    // Loading it: mdeliver -n reads the whole file (and says so on stderr if it cannot).
    let load = format!("mdeliver -n -C {f} <message.eml");
    let out = w.bash(&load, b"")?;
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(format!("{text}\n  {load}: {}", show(&out)));
    }
    // Routes: mrelay reads them and sends by them (the test server is every host).
    if Regex::new(r"(?m)^\s*route\s").unwrap().is_match(text) {
        let send = format!(
            "mrelay -C {f} --queue-dir {} -f me@example.org bob@example.net <message.eml",
            w.root().join("relay-queue").display()
        );
        run_checked(w, &send, &[Expect::Sent], || w.bash(&send, b""))
            .map_err(|e| format!("{text}\n  {e}"))?;
    }
    let accounts: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("account "))
        .map(|a| a.split(':').next().unwrap_or("").trim())
        .collect();
    let has_host = HOST.is_match(text);
    for a in &accounts {
        let send = format!("msubmit -C {f} -a {a} bob@example.org <message.eml");
        run_checked(w, &send, &[Expect::Sent], || w.bash(&send, b""))
            .map_err(|e| format!("{text}\n  {e}"))?;
    }
    if accounts.is_empty() && has_host {
        let send = format!("msubmit -C {f} bob@example.org <message.eml");
        run_checked(w, &send, &[Expect::Sent], || w.bash(&send, b""))
            .map_err(|e| format!("{text}\n  {e}"))?;
    }
    if let Some(c) = Regex::new(r"(?m)^\s*maildir\s+(\S+)")
        .unwrap()
        .captures(text)
    {
        let target = w.path(&c[1], &w.home);
        let deliver = format!("mdeliver -C {f} <message.eml");
        run_checked(w, &deliver, &[Expect::Delivered(target)], || {
            w.bash(&deliver, b"")
        })
        .map_err(|e| format!("{text}\n  {e}"))?;
    }
    Ok(())
}

/// A rules file: mdeliver -n loads it and says what it would do, with no complaint (a broken
/// rules file is only a warning in delivery, so the warning is the failure here).
pub fn run_rules(w: &World, text: &str) -> Result<(), String> {
    let file = w.root().join("rules");
    std::fs::write(&file, format!("{text}\n")).unwrap();
    let cmd = format!(
        "mdeliver -n --rules {} ~/Maildir <message.eml",
        file.display()
    );
    let out = w.bash(&cmd, b"")?;
    if !out.status.success() || !out.stderr.is_empty() || out.stdout.is_empty() {
        return Err(format!("{text}\n  {cmd}: {}", show(&out)));
    }
    Ok(())
}

/// An address list: mcompose takes it as -t and writes every address into To:.
pub fn run_addresses(w: &World, list: &str) -> Result<(), String> {
    let mut c = Command::new(crate::bin!("mcompose"));
    w.env(&mut c);
    c.args(["-f", "me@example.org", "-t", list, "-s", "addresses"]);
    let out = run_bounded(&mut c, b"x\n", Duration::from_secs(30))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let to: String = text
        .split("\n\n")
        .next()
        .unwrap_or("")
        .lines()
        .skip_while(|l| !l.starts_with("To:"))
        .take_while(|l| l.starts_with("To:") || l.starts_with([' ', '\t']))
        .collect();
    let addr = Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+[A-Za-z]").unwrap();
    let missing: Vec<&str> = addr
        .find_iter(list)
        .map(|m| m.as_str())
        .filter(|a| !to.contains(a))
        .collect();
    if !out.status.success() || !missing.is_empty() {
        return Err(format!(
            "{list}\n  mcompose -t: missing {missing:?} in {to:?}\n  {}",
            show(&out)
        ));
    }
    Ok(())
}

/// A ~/.pinerc line: Alpine runs sendmail-path and, with -bs, speaks SMTP to it.
pub fn run_pinerc(w: &World, key: &str, value: &str) -> Result<(), String> {
    let shown = format!("{key}={value}");
    if key != "sendmail-path" || !value.split_whitespace().any(|a| a == "-bs") {
        return Err(format!("{shown}\n  no rule runs this .pinerc line"));
    }
    let value = w.substitute(value);
    let argv: Vec<&str> = value.split_whitespace().collect();
    if !argv[0].starts_with('/') {
        return Err(format!("{shown}\n  give the absolute path"));
    }
    let session = smtp_session("example.org");
    run_checked(w, &shown, &[Expect::Sent], || {
        let mut c = Command::new(argv[0]);
        w.env(&mut c);
        c.args(&argv[1..]);
        let out = run_bounded(&mut c, session.as_bytes(), Duration::from_secs(30))?;
        if accepted(&String::from_utf8_lossy(&out.stdout)) {
            Ok(out)
        } else {
            Err(format!("the session was not accepted\n  {}", show(&out)))
        }
    })
    .map(drop)
}

/// `make TARGET`: make -n must know it; demo and install run their recipes (with the test's
/// binaries for target/release and DESTDIR in the test's root), the others cannot run inside
/// a test and stop at make -n: build (a release build takes minutes and the tests already
/// run these sources), test and ci (this suite itself), peers (apt-get as root), docs
/// (rewrites the source tree; tests/it/docs.rs checks it), bench (minutes of benchmarks),
/// fuzz and fuzz-ci (minutes of fuzzing, installing cargo-afl).
pub fn run_make(w: &World, words: &[String]) -> Result<(), String> {
    let shown = format!("make {}", words.join(" "));
    let target = words.first().map(String::as_str).unwrap_or("all");
    let vars: Vec<String> = words[1.min(words.len())..]
        .iter()
        .map(|v| match v.split_once('=') {
            Some(("DESTDIR", _)) => format!("DESTDIR={}", w.root().display()),
            _ => v.clone(),
        })
        .collect();
    let out = Command::new("make")
        .arg("-n")
        .arg("-C")
        .arg(project())
        .arg(target)
        .args(&vars)
        .output()
        .map_err(|e| format!("{shown}\n  make: {e}"))?;
    if !out.status.success() {
        return Err(format!("{shown}\n  make -n: {}", show(&out)));
    }
    let recipe = String::from_utf8_lossy(&out.stdout).replace("\\\n", " ");
    let release = project().join("target/release");
    let runnable: Vec<String> = recipe
        .lines()
        .filter(|l| !l.starts_with("make") && !l.trim().is_empty())
        .filter(|l| first_word(l).rsplit('/').next() != Some("cargo"))
        .map(|l| {
            l.replace("./target/release/", &format!("{}/", bin_dir().display()))
                .replace(
                    &format!("{}/", release.display()),
                    &format!("{}/", bin_dir().display()),
                )
                .replace("target/release/", &format!("{}/", bin_dir().display()))
        })
        .collect();
    match target {
        // install-spool needs root, the service user and the drop group: its recipe is
        // checked by make -n here, its effect by tests/it/mdrop.rs, which builds the same.
        "build" | "all" | "test" | "ci" | "peers" | "docs" | "bench" | "fuzz" | "fuzz-ci"
        | "install-spool" => Ok(()),
        // The five-step script: run as make would (its binaries ours), judged by its own
        // byte-for-byte check (tests/it/demo.rs runs it in more detail).
        "demo" => {
            for l in runnable {
                let mut c = Command::new("bash");
                w.env(&mut c);
                c.current_dir(project()).args(["-o", "pipefail", "-c", &l]);
                let out = run_bounded(&mut c, b"", Duration::from_secs(60))?;
                let stdout = String::from_utf8_lossy(&out.stdout);
                if !out.status.success() || !stdout.contains("the body arrived byte-identical") {
                    return Err(format!("{shown}\n  {}", show(&out)));
                }
            }
            Ok(())
        }
        "install" => {
            let script = runnable.join("\n");
            let mut c = Command::new("bash");
            w.env(&mut c);
            c.current_dir(project())
                .args(["-e", "-o", "pipefail", "-c", &script]);
            let out = run_bounded(&mut c, b"", Duration::from_secs(30))?;
            if !out.status.success() {
                return Err(format!("{shown}\n  {}", show(&out)));
            }
            let prefix = vars
                .iter()
                .find_map(|v| v.strip_prefix("PREFIX="))
                .unwrap_or("/usr/local");
            let base = w.root().join(prefix.trim_start_matches('/'));
            for t in ["mcompose", "msubmit", "mreceive", "mdeliver"] {
                let p = base.join("bin").join(t);
                if !p.is_file() || !base.join(format!("share/man/man1/{t}.1")).is_file() {
                    return Err(format!(
                        "{shown}\n  {} (or its man page) was not installed",
                        p.display()
                    ));
                }
            }
            Ok(())
        }
        t => Err(format!("{shown}\n  no rule says how to run make {t}")),
    }
}

/// Where tests/peers/install.sh unpacks Exim's and OpenSMTPD's packages without installing
/// them (both conflict with Postfix as Debian packages): only their syntax checkers run.
const CHECKERS: &str = "/opt/mailpipe-checkers";

/// The envelope and the user an MTA's delivery example is run for.
fn expand_envelope(a: &str, bob: &Path, pairs: &[(&str, &str)]) -> String {
    let home = bob.display().to_string();
    let mut a = a.to_string();
    for (k, v) in pairs {
        a = a.replace(k, &v.replace("HOME", &home));
    }
    a
}

/// Run an MTA's delivery command for bob, with `prefix` before the message on stdin (what
/// that MTA writes first), `env` its environment, `argv` as it splits the command (or, with
/// `shell`, the command line /bin/sh -c runs, whose words `argv` are).
fn run_mta_command(
    w: &World,
    shown: &str,
    argv: &[String],
    shell: Option<&str>,
    prefix: &str,
    env: &[(&str, String)],
) -> Result<(), String> {
    let bob = w.root().join("home/bob");
    let stage = Stage {
        words: argv
            .iter()
            .map(|a| Word {
                text: a.clone(),
                span: (0, 0),
            })
            .collect(),
        ..Stage::default()
    };
    let expects = expectations(&[stage], &bob, &bob)?;
    let mut stdin = prefix.as_bytes().to_vec();
    stdin.extend_from_slice(MESSAGE.as_bytes());
    run_checked(w, shown, &expects, || {
        let mut c = match shell {
            Some(line) => {
                let mut c = Command::new("/bin/sh");
                c.args(["-c", line]);
                c
            }
            None => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &bob)
            .current_dir(&bob);
        for (k, v) in env {
            c.env(k, v);
        }
        run_bounded(&mut c, &stdin, Duration::from_secs(30))
    })
    .map(drop)
}

/// The NSS wrapper that lets the unpacked Exim find its compiled-in user (Debian-exim) and
/// bob without adding either to the system.
fn nss_wrapper() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ]
    .iter()
    .map(|d| Path::new(d).join("libnss_wrapper.so"))
    .find(|p| p.is_file())
}

/// Exim routers and transports: Exim's own `-bV` must read them (with the main section a
/// Debian configuration has: local_domains, and logs and spool in the root), `-bt` must route
/// bob@example.org to a pipe transport, and that transport's command is run as Exim's pipe
/// transport runs it: split into words without a shell, `$sender_address`, `$local_part`,
/// `$domain`, `$home` expanded, a From_ line before the message (its message_prefix).
pub fn run_exim(w: &World, text: &str) -> Result<(), String> {
    let exim = format!("{CHECKERS}/usr/sbin/exim4");
    if !have(&[exim.as_str()]) {
        return Ok(());
    }
    let Some(nss) = nss_wrapper() else {
        if crate::common::in_ci() {
            return Err(format!(
                "{text}\n  libnss_wrapper.so missing (libnss-wrapper)"
            ));
        }
        eprintln!("SKIPPED: libnss_wrapper.so missing (run tests/peers/install.sh)");
        return Ok(());
    };
    let root = w.root();
    let bob = root.join("home/bob");
    // Exim refuses to run as its user with uid 0, and never delivers to root: a number of
    // their own for both (no process runs under it; the checker only looks them up).
    let (uid, gid) = (64_991, 64_991);
    let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd += &format!(
        "Debian-exim:x:{uid}:{gid}::/:/bin/false\nbob:x:{uid}:{gid}::{}:/bin/sh\n",
        bob.display()
    );
    let mut group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    group += &format!("Debian-exim:x:{gid}:\n");
    std::fs::write(root.join("nss-passwd"), passwd).unwrap();
    std::fs::write(root.join("nss-group"), group).unwrap();
    std::fs::create_dir_all(root.join("exim-spool")).unwrap();
    let conf = root.join("exim.conf");
    std::fs::write(
        &conf,
        format!(
            "primary_hostname = mx.example.org\ndomainlist local_domains = example.org\n\
             log_file_path = {r}/exim-%slog\nspool_directory = {r}/exim-spool\n{}\n",
            w.substitute(text),
            r = root.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| -> Result<String, String> {
        let out = Command::new(&exim)
            .env("LD_PRELOAD", &nss)
            .env("NSS_WRAPPER_PASSWD", root.join("nss-passwd"))
            .env("NSS_WRAPPER_GROUP", root.join("nss-group"))
            .arg("-C")
            .arg(&conf)
            .args(args)
            .output()
            .map_err(|e| format!("{exim}: {e}"))?;
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() || all.contains("configuration error") {
            return Err(format!("{text}\n  exim {}: {all}", args.join(" ")));
        }
        Ok(all)
    };
    run(&["-bV"])?;
    let routed = run(&["-bt", "bob@example.org"])?;
    let transport = Regex::new(r"transport = (\S+)")
        .unwrap()
        .captures(&routed)
        .map(|c| c[1].to_string())
        .ok_or_else(|| format!("{text}\n  exim -bt bob@example.org: no transport: {routed}"))?;
    let options = run(&["-bP", "transport", &transport])?;
    let command = options
        .lines()
        .find_map(|l| l.strip_prefix("command = "))
        .ok_or_else(|| format!("{text}\n  transport {transport} has no command"))?;
    let argv: Vec<String> = command
        .split_whitespace()
        .map(|a| {
            expand_envelope(
                a,
                &bob,
                &[
                    ("$sender_address", "ann@example.net"),
                    ("${sender_address}", "ann@example.net"),
                    ("$local_part", "bob"),
                    ("${local_part}", "bob"),
                    ("$domain", "example.org"),
                    ("${domain}", "example.org"),
                    ("$home", "HOME"),
                    ("${home}", "HOME"),
                ],
            )
        })
        .collect();
    if let Some(left) = argv.iter().find(|a| a.contains('$')) {
        return Err(format!("{text}\n  no rule expands {left}"));
    }
    if !argv[0].starts_with('/') {
        return Err(format!(
            "{text}\n  a pipe transport needs the absolute path"
        ));
    }
    run_mta_command(
        w,
        text,
        &argv,
        None,
        "From ann@example.net Mon Jan  1 10:00:00 2024\n",
        &[
            ("LOCAL_PART", "bob".into()),
            ("DOMAIN", "example.org".into()),
            ("SENDER", "ann@example.net".into()),
            ("USER", "bob".into()),
            ("LOGNAME", "bob".into()),
        ],
    )
}

/// OpenSMTPD's smtpd.conf lines: `smtpd -n` must find the configuration OK (with the
/// snippet alone: it is whole), and each `action … mda "…"` command runs as smtpd runs it
/// for bob: through /bin/sh -c, %{…} expanded, Return-Path: and Delivered-To: before the
/// message.
pub fn run_smtpd(w: &World, text: &str) -> Result<(), String> {
    let smtpd = format!("{CHECKERS}/usr/sbin/smtpd");
    if !have(&[smtpd.as_str()]) {
        return Ok(());
    }
    let conf = w.root().join("smtpd.conf");
    std::fs::write(&conf, format!("{}\n", w.substitute(text))).unwrap();
    let out = Command::new(&smtpd)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .output()
        .map_err(|e| format!("{smtpd}: {e}"))?;
    if !out.status.success() || !show(&out).contains("configuration OK") {
        return Err(format!("{text}\n  smtpd -n: {}", show(&out)));
    }
    let bob = w.root().join("home/bob");
    let mda = Regex::new(r#"^action\s+\S+\s+mda\s+"((?:[^"\\]|\\.)*)""#).unwrap();
    let mut ran = 0;
    for line in text.lines() {
        let Some(c) = mda.captures(line.trim()) else {
            continue;
        };
        let cmd = expand_envelope(
            &w.substitute(&c[1]),
            &bob,
            &[
                ("%{sender}", "ann@example.net"),
                ("%{rcpt}", "bob@example.org"),
                ("%{dest}", "bob@example.org"),
                ("%{rcpt.user}", "bob"),
                ("%{dest.user}", "bob"),
                ("%{rcpt.domain}", "example.org"),
                ("%{user.username}", "bob"),
                ("%{user.directory}", "HOME"),
            ],
        );
        if cmd.contains("%{") {
            return Err(format!("{line}\n  no rule expands the %{{…}} in {cmd}"));
        }
        let stages = parse_stages(&cmd)?;
        if stages.len() != 1 || !stages[0].args().first().is_some_and(|p| p.starts_with('/')) {
            return Err(format!("{line}\n  an mda command needs one absolute path"));
        }
        let argv: Vec<String> = stages[0].args().iter().map(|a| a.to_string()).collect();
        run_mta_command(
            w,
            line,
            &argv,
            Some(&cmd),
            "Return-Path: <ann@example.net>\nDelivered-To: bob@example.org\n",
            &[
                ("USER", "bob".into()),
                ("LOGNAME", "bob".into()),
                ("SHELL", "/bin/sh".into()),
                ("SENDER", "ann@example.net".into()),
                ("RECIPIENT", "bob@example.org".into()),
            ],
        )?;
        ran += 1;
    }
    if ran == 0 {
        return Err(format!("{text}\n  no `action … mda` line: no rule runs it"));
    }
    Ok(())
}

/// Lines of a sender-login map: mreceive's own loader reads them, and each login may then
/// send as the address it is given (an address at the domain for `@domain`) and no login
/// as an address of a domain no line names.
fn run_sender_map(w: &World, text: &str) -> Result<(), String> {
    use mailpipe::smtp::policy::{Policy, Senders};
    let path = w.root().join("senders");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let senders = Senders::load(Some(&path), &[]).map_err(|e| format!("{text}\n  {e}"))?;
    let policy = Policy::new(&[], None).with_senders(senders);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let (Some(address), Some(logins)) = (words.next(), words.next()) else {
            return Err(format!("{line}\n  not ADDRESS LOGINS"));
        };
        let address = match address.strip_prefix('@') {
            Some(domain) => format!("anyone@{domain}"),
            None => address.to_string(),
        };
        for login in logins.split(',') {
            if policy.check_sender(login, &address).is_err() {
                return Err(format!("{line}\n  {login} may not send as {address}"));
            }
            if policy.check_sender(login, "x@unnamed.test").is_ok() {
                return Err(format!("{line}\n  {login} may send as anyone"));
            }
        }
    }
    Ok(())
}
