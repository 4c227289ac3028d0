//! Log lines that a man page shows (mreceive's LOGGING, and mrelay's): for mreceive the
//! session they tell of is played again to mreceive, and it must log those lines, key for
//! key and value for value, but for what differs from run to run (process and session ids,
//! the message's id, size and delay); mrelay's see `run_relay_log`.
//! The client's address comes as tcpserver gives it (TCPREMOTEIP); a recipient whose delivery
//! failed gets a stand-in delivery command that fails as the line says (the exit status, and
//! the rest of the reason as its last line on stderr).

use crate::common::mreceive::{LogLine, parse_log};
use crate::examples::world::{World, bin_dir, run_bounded, show};
use regex::Regex;
use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

static LOG_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^mreceive\[\d+\]: [0-9A-F]+: [a-z]+ ").unwrap());

/// A failed delivery's reason a stand-in can give: `deliver via PROGRAM: exited with status
/// N`, and what it said.
static FAILED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^deliver via (\S+): exited with status (\d+)(?:: (.*))?$").unwrap()
});

/// mrelay's: `mrelay[PID]: QUEUEID: delivery …`.
static RELAY_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^mrelay\[\d+\]: \S+: delivery ").unwrap());

/// True when every line of `text` is one of mreceive's log lines, or every one mrelay's.
pub fn is_log(text: &str) -> bool {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    !lines.is_empty()
        && (lines.iter().all(|l| LOG_LINE.is_match(l))
            || lines.iter().all(|l| RELAY_LINE.is_match(l)))
}

/// mrelay's lines: a message to the recipients the lines name is sent by mrelay to the test
/// server (every domain's route in the world's configuration), and each must be logged as
/// shown, key for key, the values alike but for what differs from run to run or from server
/// to server (the queue id, the delay, the relay and its reply).
fn run_relay_log(w: &World, text: &str) -> Result<(), String> {
    let want = parse_log(text, "mrelay");
    let rcpts: Vec<String> = want
        .iter()
        .map(|l| {
            l.get("to")
                .map(|t| t.trim_start_matches('<').trim_end_matches('>').to_string())
                .ok_or("no to=")
        })
        .collect::<Result<_, _>>()?;
    let mut c = Command::new(bin_dir().join("mrelay"));
    w.env(&mut c);
    c.args(["-f", "ann@example.net"]).args(&rcpts);
    let out = run_bounded(
        &mut c,
        b"Subject: logged\n\nhello\n",
        Duration::from_secs(30),
    )?;
    let logged: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| RELAY_LINE.is_match(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let got = parse_log(&logged, "mrelay");
    let differ = |why: String| format!("{why}\n  mrelay logged:\n{logged}  {}", show(&out));
    if got.len() != want.len() {
        return Err(differ(format!(
            "{} lines logged, the example shows {}",
            got.len(),
            want.len()
        )));
    }
    for (g, x) in got.iter().zip(&want) {
        let keys = |l: &LogLine| l.pairs.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        if g.kind != x.kind || keys(g) != keys(x) {
            return Err(differ(format!(
                "a {} line with {:?} where the example has {} with {:?}",
                g.kind,
                keys(g),
                x.kind,
                keys(x)
            )));
        }
        for ((key, gv), (_, xv)) in g.pairs.iter().zip(&x.pairs) {
            if !["delay", "relay", "reply"].contains(&key.as_str()) && gv != xv {
                return Err(differ(format!("{key}={gv:?} where the example has {xv:?}")));
            }
        }
    }
    Ok(())
}

/// Keys whose values differ from run to run.
const VARYING: &[&str] = &["id", "size", "delay"];

pub fn run_log(w: &World, text: &str) -> Result<(), String> {
    if text.trim_start().starts_with("mrelay[") {
        return run_relay_log(w, text);
    }
    let want = parse_log(text, "mreceive");
    let first = |kind: &str, key: &str| {
        want.iter()
            .filter(|l| l.kind == kind || kind.is_empty())
            .find_map(|l| l.get(key))
    };
    let unbracket = |a: &str| a.trim_start_matches('<').trim_end_matches('>').to_string();
    let client = first("connect", "client").ok_or("no connect line with client=")?;
    let helo = first("", "helo").ok_or("no line with helo=")?;
    let from = first("message", "from").ok_or("no message line with from=")?;
    let mut session = format!("EHLO {helo}\r\nMAIL FROM:{from}\r\n");
    let mut domain = None;
    let mut stand_in = String::from("#!/bin/sh\ncat >/dev/null\ncase \"$RECIPIENT\" in\n");
    let mut program = None;
    for l in &want {
        let to = match (l.kind.as_str(), l.get("cmd")) {
            ("reject", Some("RCPT")) | ("delivery", _) => l.get("to").ok_or("no to=")?,
            _ => continue,
        };
        session += &format!("RCPT TO:{to}\r\n");
        if l.kind != "delivery" {
            continue;
        }
        let to = unbracket(to);
        domain.get_or_insert_with(|| to.rsplit('@').next().unwrap_or("").to_string());
        if let Some(reason) = l.get("reason") {
            let c = FAILED
                .captures(reason)
                .ok_or_else(|| format!("a reason no stand-in can give: {reason}"))?;
            program = Some(c[1].to_string());
            let said = c.get(3).map_or(String::new(), |s| {
                format!(
                    "printf '%s\\n' '{}' >&2; ",
                    s.as_str().replace('\'', "'\\''")
                )
            });
            stand_in += &format!("'{to}') {said}exit {};;\n", &c[2]);
        }
    }
    stand_in += "esac\n";
    let domain = domain.ok_or("no delivery line")?;
    session += "DATA\r\nFrom: ann@example.net\r\nSubject: logged\r\n\r\nhello\r\n.\r\n";
    if first("disconnect", "end") == Some("quit") {
        session += "QUIT\r\n";
    }
    let script = w.root().join("stand-in-delivery");
    std::fs::write(&script, stand_in).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let mut c = Command::new(bin_dir().join("mreceive"));
    w.env(&mut c);
    c.env("TCPREMOTEIP", client)
        .args(["-d", &domain, "--hostname", "mx.example.org", "-m"])
        .arg(w.root().join("var/mail"))
        .arg("-c")
        .arg(&script);
    let out = run_bounded(&mut c, session.as_bytes(), Duration::from_secs(30))?;
    let logged: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| LOG_LINE.is_match(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let got = parse_log(&logged, "mreceive");
    let script = script.display().to_string();
    let differ = |why: String| format!("{why}\n  mreceive logged:\n{logged}  {}", show(&out));
    if got.len() != want.len() {
        return Err(differ(format!(
            "{} lines logged, the example shows {}",
            got.len(),
            want.len()
        )));
    }
    for (g, x) in got.iter().zip(&want) {
        let keys = |l: &LogLine| l.pairs.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        if g.kind != x.kind || keys(g) != keys(x) {
            return Err(differ(format!(
                "a {} line with {:?} where the example has {} with {:?}",
                g.kind,
                keys(g),
                x.kind,
                keys(x)
            )));
        }
        for ((key, gv), (_, xv)) in g.pairs.iter().zip(&x.pairs) {
            let gv = match &program {
                Some(p) if key == "reason" => gv.replace(&script, p),
                _ => gv.clone(),
            };
            if !VARYING.contains(&key.as_str()) && gv != *xv {
                return Err(differ(format!(
                    "{} {key}={gv:?} where the example has {xv:?}",
                    g.kind
                )));
            }
        }
    }
    Ok(())
}
