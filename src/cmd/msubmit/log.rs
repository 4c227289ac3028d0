//! msubmit's log: one key=value line per message, as msmtp's `logfile` and `syslog`.

use crate::exit::Result;
use crate::relay::account::{Sent, Server};
use crate::smtp::Reply;
use crate::smtp::client::Envelope;

/// One key=value line per message, appended with a single write (O_APPEND keeps lines of
/// concurrent processes whole). A log that cannot be written is reported, never fatal.
pub(super) fn log(server: &Server, env: &Envelope, result: &Result<Sent>) {
    if server.log.is_none() && !server.syslog {
        return;
    }
    let o = &server.options;
    let (status, text, code) = match result {
        Ok(Sent { refusals, data, .. }) => match refusals.first().map(|r| &r.error) {
            None => (
                data.as_ref().map_or(0, |r| r.code),
                data.as_ref().map(Reply::text).unwrap_or_default(),
                0,
            ),
            Some(e) => (0, e.to_string(), e.code().as_i32()),
        },
        Err(e) => (0, e.to_string(), e.code().as_i32()),
    };
    let q = crate::log::quote;
    let rcpts: Vec<&str> = env.rcpts.iter().map(|r| r.addr.as_str()).collect();
    let line = format!(
        "time={} account={} host={} port={} tls={} auth={} from={} recipients={} size={} smtpstatus={} smtpmsg={} exitcode={}\n",
        chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%z"),
        q(server.account.as_deref().unwrap_or("-")),
        q(&server.host),
        server.port,
        o.tls.name(),
        q(o.auth.as_ref().map_or("off", |c| c.user.as_str())),
        q(&env.from),
        q(&rcpts.join(",")),
        env.size.unwrap_or(0),
        status,
        q(&text),
        code
    );
    if server.syslog {
        syslog(line.trim_end());
    }
    if let Some(path) = &server.log {
        crate::cmd::append_log(path, &line);
    }
}

/// Send one line to syslog, facility mail, as msmtp's `syslog on` does: like syslog(3), an
/// unreachable syslog loses the line quietly (the log file, when given, still has it).
fn syslog(line: &str) {
    let log = crate::log::Syslog::new("msubmit", crate::log::SYSLOG_SOCKET);
    let _ = log.send(crate::log::Severity::Info, line);
}
