//! Every example in README.md and in the man pages runs, as written, and does what it shows.
//!
//! Examples are what a new user copies first, and ours had rotted unnoticed (issue 8 item 9:
//! a configuration key the parser refused, a pipeline that delivered an empty message and
//! exited 0). So the examples are taken from the files themselves: README's code blocks and
//! every no-fill block (`.nf`/`.fi`, `.EX`/`.EE`) of `man/*`; a new example is picked up
//! without touching this test, and one that no rule below knows how to run fails it, loudly.
//!
//! Each block runs in a fresh root directory. System paths (/etc, /var, /home, /tmp, and
//! sendmail's /usr/sbin/sendmail, /usr/bin/mailq, /usr/bin/newaliases) move under it and `~`
//! is a home inside it; our tools' install paths point at the built binaries (never mblaze's
//! /usr/bin/mdeliver); example server names become 127.0.0.1 and their ports those of two test
//! servers (mreceive with STARTTLS and with implicit TLS, AUTH for "me" and "alice" with the
//! password "secret"); listening addresses become loopback with spare ports; the user vmail
//! becomes whoever runs the test; Dovecot's LDA reads the configuration of a private Dovecot
//! started in the root for the example (its /etc/dovecot/dovecot.conf moves there too).
//!
//! Shell lines run with `bash -o pipefail`, one after the other, and each command's effect is
//! checked: a message in the Maildir it names, on the server, in the queue, in a file. Lines
//! meant for other programs run in those programs when they are installed (in CI they must
//! be): crontab lines through `crontab -n` and then as cron runs them (sh, PATH=/usr/bin:/bin),
//! inetd.conf lines under `inetd -d`, tcpserver lines under tcpserver, systemd units through
//! `systemd-analyze verify` and `systemd-socket-activate`, Postfix main.cf and master.cf lines
//! through `postconf` and then the way local(8) and pipe(8) run their commands, Exim's and
//! OpenSMTPD's through their own checkers (`exim -bV`/`-bt`, `smtpd -n`, from the packages
//! tests/peers/install.sh unpacks, since both conflict with Postfix) and then the way their
//! pipe transport and mda run the command, fetchmail against a small POP3 server. Snippets for our own tools (a configuration, rules, an
//! address list) are loaded by the tool that reads them; mreceive's log lines must be what
//! mreceive logs when the session they tell of is played to it (examples/logs.rs).
//!
//! An example that fails here because the test cannot run it (not because it is wrong)
//! needs a fixture (`World::new` in examples/world.rs) or a rule: what a program should do
//! is in `expectations` (examples/shell.rs), how a kind of block runs in examples/runners.rs
//! and examples/servers.rs, how blocks are found and sorted in examples/extract.rs.

mod extract;
mod logs;
mod runners;
mod servers;
mod shell;
mod world;

use extract::{Block, Kind, all_blocks, classify, markdown_blocks, roff_blocks, unroff};
use runners::{check_sendmail_link, run_example};
use shell::{expectations, parse_stages};
use std::path::{Path, PathBuf};
use world::{Servers, World};

/// The project root: README.md and man/ are read from here.
fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every example, run. Failures are collected so one run shows all of them.
#[test]
fn every_example_in_readme_and_man_pages_runs() {
    let blocks = all_blocks().unwrap_or_else(|e| panic!("{e}"));
    let srv = Servers::start();
    let mut failures = Vec::new();
    let mut ran = 0;
    for block in &blocks {
        let examples = match classify(block) {
            Ok(e) => e,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let w = World::new(&srv);
        for ex in &examples {
            ran += 1;
            if let Err(e) = run_example(&w, ex) {
                failures.push(format!("{}: {e}", ex.origin));
            }
        }
    }
    assert!(
        ran > 20,
        "only {ran} examples found: is the extraction broken?"
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} examples fail:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Every EXAMPLES section yields examples: an extraction that finds nothing passes nothing.
#[test]
fn every_examples_section_is_found() {
    let blocks = all_blocks().unwrap();
    for entry in std::fs::read_dir(project().join("man")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&p).unwrap();
        let Some(at) = text.lines().position(|l| l.starts_with(".SH EXAMPLES")) else {
            continue;
        };
        let found = blocks.iter().any(|b| {
            b.file == name
                && b.origin
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
                    > at
        });
        assert!(found, "{name}: EXAMPLES without a block this test finds");
    }
    assert!(blocks.iter().filter(|b| b.file == "README.md").count() >= 5);
}

#[test]
fn what_no_rule_handles_fails_loudly() {
    // An escape, a request, a command outside a block, an unknown language, a program.
    assert!(unroff(r"mdeliver \*(Tx").is_err());
    assert!(roff_blocks("x.1", ".nf\n.B bold\n.fi\n").is_err());
    assert!(roff_blocks("x.1", ".SH EXAMPLES\nmdeliver \\-n\n").is_err());
    assert!(roff_blocks("x.1", ".nf\nmdeliver\n").is_err());
    assert!(markdown_blocks("x.md", "```python\nprint()\n```\n").is_err());
    assert!(markdown_blocks("x.md", "- item\n\n    code or text?\n").is_err());
    let block = Block {
        origin: "x.1:1".into(),
        file: "x.1".into(),
        text: "frobnicate --all | mdeliver ~/Maildir".into(),
    };
    let ex = classify(&block).unwrap();
    let Kind::Shell(line) = &ex[0].kind else {
        panic!("{ex:?}")
    };
    let e = expectations(
        &parse_stages(line).unwrap(),
        Path::new("/h"),
        Path::new("/h"),
    )
    .unwrap_err();
    assert!(
        e.contains("no rule knows what `frobnicate` should do"),
        "{e}"
    );
    // mkdir only with -p: another option is something nobody checked.
    let e = expectations(
        &parse_stages("mkdir -m 700 /tmp/x").unwrap(),
        Path::new("/h"),
        Path::new("/h"),
    )
    .unwrap_err();
    assert!(
        e.contains("no rule knows what `mkdir -m 700 /tmp/x`"),
        "{e}"
    );
}

/// A link to msubmit is checked by running it under its name, as sendmail's links are run:
/// a mailq that lists nothing, a newaliases that talks, a name no rule knows, each fails.
#[test]
fn a_link_to_msubmit_is_run_by_its_name() {
    let srv = Servers::start();
    let w = World::new(&srv);
    let link = |name: &str, target: &str| {
        let p = w.root().join("usr/bin").join(name);
        std::os::unix::fs::symlink(target, &p).unwrap();
        p
    };
    let e = check_sendmail_link(&w, &link("mailq", "/bin/true")).unwrap_err();
    assert!(
        e.contains("should list the queue as msubmit -bp does"),
        "{e}"
    );
    let e = check_sendmail_link(&w, &link("newaliases", "/bin/echo")).unwrap_err();
    assert!(e.contains("should exit 0 quietly"), "{e}");
    let msubmit = world::bin_dir().join("msubmit");
    let e = check_sendmail_link(&w, &link("frob", msubmit.to_str().unwrap())).unwrap_err();
    assert!(e.contains("no rule says what msubmit run as"), "{e}");
}

#[test]
fn blocks_are_read_as_the_reader_sees_them() {
    let b = roff_blocks(
        "x.1",
        ".SH EXAMPLES\nSend:\n.PP\n.nf\n.RS\nmcompose \\-t \\(aqA <a@b.org>\\(aq \\e\n  \\-s hi | msubmit \\-t\n.RE\n.fi\n",
    )
    .unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].origin, "x.1:6");
    assert_eq!(
        b[0].text,
        "mcompose -t 'A <a@b.org>' \\\n  -s hi | msubmit -t"
    );
    let ex = classify(&b[0]).unwrap();
    assert_eq!(ex.len(), 1);
    let Kind::Shell(line) = &ex[0].kind else {
        panic!()
    };
    let stages = parse_stages(line).unwrap();
    assert_eq!(
        stages[0].args(),
        ["mcompose", "-t", "A <a@b.org>", "-s", "hi"]
    );
    assert_eq!(stages[1].args(), ["msubmit", "-t"]);
    let md = markdown_blocks(
        "R.md",
        "text\n\n    # c\n    a \\\n      b\n\n    */5 * * * * x\n\nmore\n",
    )
    .unwrap();
    assert_eq!(md.len(), 1);
    let ex = classify(&md[0]).unwrap();
    assert_eq!(ex[0].kind, Kind::Shell("a \\\n  b".into()));
    assert_eq!(ex[0].origin, "R.md:4");
    assert_eq!(ex[1].kind, Kind::Cron("*/5 * * * * x".into()));
    // In mailpipe-rules(5) a block is a rules file unless it starts with a program.
    let command = Block {
        origin: "mailpipe-rules.5:1".into(),
        file: "mailpipe-rules.5".into(),
        text: "/usr/local/bin/mdeliver -n ~/Maildir <m.eml".into(),
    };
    assert!(matches!(
        classify(&command).unwrap()[0].kind,
        Kind::Shell(_)
    ));
    let rules = Block {
        text: "header Subject contains x folder X".into(),
        ..command
    };
    assert!(matches!(classify(&rules).unwrap()[0].kind, Kind::Rules(_)));
}

/// A log example is replayed: lines mreceive would not log as shown fail, naming the
/// difference.
#[test]
fn a_log_example_is_what_mreceive_logs() {
    let srv = Servers::start();
    let w = World::new(&srv);
    let good = "mreceive[1]: 0A: connect client=192.0.2.9\n\
                mreceive[1]: 0A: message id=1 client=192.0.2.9 helo=c.example from=<a@example.net> \
                size=1 nrcpt=1 status=rejected dsn=5.3.0 \
                reply=\"554 5.3.0 delivery failed for <bob@example.org>\" delay=0.01\n\
                mreceive[1]: 0A: delivery id=1 from=<a@example.net> to=<bob@example.org> user=bob \
                status=bounced dsn=5.3.0 reason=\"deliver via /x/lda: exited with status 67: no such user\"\n\
                mreceive[1]: 0A: disconnect client=192.0.2.9 helo=c.example end=closed commands=4 \
                errors=0 accepted=0\n";
    let block = Block {
        origin: "x.1:1".into(),
        file: "x.1".into(),
        text: good.into(),
    };
    assert_eq!(classify(&block).unwrap()[0].kind, Kind::Log(good.into()));
    logs::run_log(&w, good).unwrap();
    for (right, wrong, error) in [
        (
            "status=bounced",
            "status=deferred",
            "delivery status=\"bounced\" where the example has \"deferred\"",
        ),
        (
            "commands=4",
            "commands=5",
            "disconnect commands=\"4\" where the example has \"5\"",
        ),
        (
            " user=bob",
            "",
            "a delivery line with [\"id\", \"from\", \"to\", \"user\"",
        ),
    ] {
        let e = logs::run_log(&w, &good.replace(right, wrong)).unwrap_err();
        assert!(e.contains(error), "{right} -> {wrong}: {e}");
    }
}

/// Postfix's two files in one block, Exim's sections and OpenSMTPD's action lines each go to
/// their own program's checker; a service unit no rule runs fails.
#[test]
fn other_mtas_configurations_are_told_apart() {
    let block = |text: &str| Block {
        origin: "R.md:1".into(),
        file: "R.md".into(),
        text: text.into(),
    };
    let postfix = "# main.cf\nx_destination_recipient_limit = 1\n# master.cf\nx unix - n n - - pipe\n  argv=/bin/true";
    assert_eq!(
        classify(&block(postfix)).unwrap()[0].kind,
        Kind::Postfix(
            "x_destination_recipient_limit = 1\n".into(),
            "x unix - n n - - pipe\n  argv=/bin/true\n".into()
        )
    );
    assert!(classify(&block("a = b\n# main.cf\n# master.cf\n")).is_err());
    let exim = "begin transports\nt:\n  driver = pipe\n  command = /bin/true";
    assert_eq!(
        classify(&block(exim)).unwrap()[0].kind,
        Kind::Exim(exim.into())
    );
    let smtpd = "action \"l\" mda \"/bin/true\"\nmatch for local action \"l\"";
    assert_eq!(
        classify(&block(smtpd)).unwrap()[0].kind,
        Kind::Smtpd(smtpd.into())
    );
    let srv = Servers::start();
    let w = World::new(&srv);
    let unit = vec![(
        "x.service".to_string(),
        "[Service]\nExecStart=/usr/local/bin/mrelay -q\n".to_string(),
    )];
    let e = servers::run_units(&w, &unit).unwrap_err();
    assert!(e.contains("no rule runs this service"), "{e}");
}
