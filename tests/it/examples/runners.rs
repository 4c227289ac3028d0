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
use std::path::Path;
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
        Kind::MasterCf(text) => run_master_cf(w, text),
        Kind::Units(units) => run_units(w, units),
        Kind::Config(text) => run_config(w, text),
        Kind::Rules(text) => run_rules(w, text),
        Kind::Passwords(text) => run_passwords(w, text),
        Kind::Addresses(list) => run_addresses(w, list),
        Kind::Pinerc(key, value) => run_pinerc(w, key, value),
        Kind::Make(words) => run_make(w, words),
        Kind::Log(text) => crate::examples::logs::run_log(w, text),
    }
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
            || p == "mreceive" && s.args().iter().any(|a| *a == "-l" || *a == "--listen")
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
    if stages.iter().any(|s| s.program() == "mreceive") && !cmd.contains("--hash-password") {
        return Err(format!(
            "{line}\n  mreceive on stdin in a shell line: no rule runs it"
        ));
    }
    let expects = expectations(&stages, &w.home, &w.home).map_err(|e| format!("{line}\n  {e}"))?;
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
fn run_relay_daemon(w: &World, line: &str, stage: &Stage) -> Result<(), String> {
    let mut c = Command::new(bin_dir().join("mrelay"));
    w.env(&mut c);
    c.args(&stage.command()[1..]);
    let daemon = crate::examples::world::Background::start(c)?;
    std::thread::sleep(Duration::from_millis(300));
    let queue = "mrelay --queue-only -f me@example.org bob@example.org <message.eml";
    let before = w.srv.count();
    let q = w.home.join(".local/share/mailpipe/queue");
    run_checked(w, queue, &[Expect::Queued(q.clone())], || {
        w.bash(queue, b"")
    })
    .map_err(|e| format!("{line}\n  {e}"))?;
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
            && ["mcompose", "msubmit", "mrelay", "mreceive", "mdeliver"].contains(p)
        {
            return Err(format!(
                "{line}\n  cron runs commands with PATH=/usr/bin:/bin: give {p}'s absolute path"
            ));
        }
    }
    let cmd = w.substitute(&command);
    let expects = expectations(&parse_stages(&cmd)?, &w.home, &w.home)?;
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

/// Postfix master.cf entries: postconf -M must read them; a pipe(8) service is then run the
/// way pipe(8) runs it (argv without a shell, ${…} expanded, flags honoured) for bob.
pub fn run_master_cf(w: &World, text: &str) -> Result<(), String> {
    let dir = w.root().join("postfix-master");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.cf"), "").unwrap();
    std::fs::write(dir.join("master.cf"), format!("{text}\n")).unwrap();
    postconf(text, &dir, &["-M"])?;
    postconf(text, &dir, &["-n"])?;
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
        "demo" => {
            for l in runnable {
                let cmd = w.substitute(&l);
                let stages = parse_stages(&cmd)?;
                let expects = expectations(&stages, &w.home, &w.home)?;
                run_checked(w, &shown, &expects, || {
                    let mut c = Command::new("bash");
                    w.env(&mut c);
                    c.current_dir(project())
                        .args(["-o", "pipefail", "-c", &cmd]);
                    run_bounded(&mut c, b"", Duration::from_secs(30))
                })?;
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
