//! The route a queued message goes by: the account it was queued through and the server
//! flags msubmit was given then (`--host`, `--port`, `--tls`, the login...), recorded in the
//! entry ([`crate::store::queue::ServerFlags`]) and laid back over the flush's command line,
//! so a message queued for one server is not sent to another by a plain `msubmit --flush`.
//!
//! A flush sends each message by its own route: one queued with server flags goes by those
//! and its account, whatever the flush's flags say (they are not mixed in: a port given to
//! the flush is not meant for a host a message was queued with); one queued without any
//! (through its account alone, or by an older msubmit, or by mreceive) goes by its account
//! with the flush's flags over it, as every message did before routes were recorded.
//! The account is read by name when the message is sent, so a corrected configuration sends
//! what waits; so are its password and `passwordeval`: an entry records a password command
//! given as a flag, never a password.

use super::Args;
use crate::store::queue::{Route, ServerFlags};
use std::borrow::Cow;

/// The route of a message queued through `account` with the command line `args`.
pub fn record(args: &Args, account: Option<String>) -> Route {
    Route::Account {
        name: account,
        flags: Box::new(flags(args)),
    }
}

/// The server flags of `args`. Every field of [`Args`] is named here, so a flag added to
/// msubmit does not build until it is said to shape the server (and is recorded) or not.
pub fn flags(args: &Args) -> ServerFlags {
    let Args {
        host,
        port,
        tls,
        ca_file,
        fingerprint,
        tls_server_name,
        user,
        password_command,
        auth,
        helo,
        timeout,
        tls_cert_file,
        tls_key_file,
        source_ip,
        proxy_host,
        proxy_port,
        // Recipients are expanded before the envelope is queued; the entry holds the result.
        aliases: _,
        // These never queue.
        pretend: _,
        serverinfo: _,
        // The message and its envelope: the entry holds what they became.
        recipients: _,
        read_recipients: _,
        ignore_dots: _,
        sender: _,
        full_name: _,
        dsn_notify: _,
        dsn_return: _,
        envid: _,
        // Signed before it is queued: the entry holds the signed message.
        dkim: _,
        // In the entry's envelope.
        requiretls: _,
        // The account is the route's own (by name); the configuration is the flush's (a
        // queue belongs to the configuration that names it).
        account: _,
        config: _,
        // What msubmit does and logs, and where its queue is: the flush's own.
        verbose: _,
        log: _,
        syslog: _,
        queue: _,
        queue_on_failure: _,
        flush: _,
        list: _,
        queue_dir: _,
        smtp_stdio: _,
        version: _,
        refused: _,
        newaliases: _,
    } = args;
    ServerFlags {
        host: host.clone(),
        port: *port,
        tls: tls.clone(),
        ca_file: ca_file.clone(),
        fingerprint: fingerprint.clone(),
        tls_server_name: tls_server_name.clone(),
        helo: helo.clone(),
        auth: auth.clone(),
        user: user.clone(),
        password_command: password_command.clone(),
        timeout: *timeout,
        tls_cert_file: tls_cert_file.clone(),
        tls_key_file: tls_key_file.clone(),
        source_ip: source_ip.clone(),
        proxy_host: proxy_host.clone(),
        proxy_port: *proxy_port,
    }
}

/// The command line a message with the `recorded` server flags is sent with by a flush run
/// as `flush`: the recorded flags in place of the flush's, when there are any; else the
/// flush's (the module header says why).
pub fn args_for<'a>(flush: &'a Args, recorded: &ServerFlags) -> Cow<'a, Args> {
    if recorded.is_empty() {
        return Cow::Borrowed(flush);
    }
    let ServerFlags {
        host,
        port,
        tls,
        ca_file,
        fingerprint,
        tls_server_name,
        helo,
        auth,
        user,
        password_command,
        timeout,
        tls_cert_file,
        tls_key_file,
        source_ip,
        proxy_host,
        proxy_port,
    } = recorded.clone();
    Cow::Owned(Args {
        host,
        port,
        tls,
        ca_file,
        fingerprint,
        tls_server_name,
        helo,
        auth,
        user,
        password_command,
        timeout,
        tls_cert_file,
        tls_key_file,
        source_ip,
        proxy_host,
        proxy_port,
        ..flush.clone()
    })
}

/// The flags as a command line would give them (`--host mail.example.net --port 2525`),
/// each value quoted for sh(1) where it needs it.
pub fn describe(flags: &ServerFlags) -> String {
    let lines = flags.lines().unwrap_or_default();
    let words = lines.iter().map(|(key, value)| {
        let flag = key.strip_prefix("route.").unwrap_or(key);
        format!("--{flag} {}", quote(value))
    });
    words.collect::<Vec<_>>().join(" ")
}

/// `s` as one sh(1) word.
fn quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(line: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("msubmit").chain(line.iter().copied())).unwrap()
    }

    #[test]
    fn the_server_flags_are_recorded_and_laid_back_whole() {
        let queued = args(&[
            "--host",
            "mail.example.net",
            "--port",
            "2525",
            "--password-command",
            "pass show 'mail'",
            "-f",
            "a@x.test",
            "b@y.test",
        ]);
        let recorded = flags(&queued);
        assert_eq!(recorded.host.as_deref(), Some("mail.example.net"));
        assert_eq!(recorded.port, Some(2525));
        assert_eq!(
            describe(&recorded),
            r"--host mail.example.net --port 2525 --password-command 'pass show '\''mail'\'''"
        );
        // The flush's server flags give way to the recorded ones, all of them: its --tls
        // is not mixed in; its own settings (verbose, the queue) stay.
        let flush = args(&["--flush", "-v", "--host", "other.test", "--tls", "none"]);
        let sent = args_for(&flush, &recorded);
        assert_eq!(sent.host.as_deref(), Some("mail.example.net"));
        assert_eq!(sent.tls, None);
        assert_eq!(sent.password_command.as_deref(), Some("pass show 'mail'"));
        assert!(sent.verbose && sent.flush);
        assert!(sent.recipients.is_empty());
        // Queued without server flags: the flush's apply, as before.
        let plain = flags(&args(&["-a", "work", "b@y.test"]));
        assert!(plain.is_empty());
        assert_eq!(args_for(&flush, &plain).host.as_deref(), Some("other.test"));
    }
}
