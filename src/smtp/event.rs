//! What the SMTP server tells its operator: a session's events (connect, TLS, refused
//! commands, each message with the outcome for each recipient, disconnect), handed to the
//! [`Log`] the caller put in [`super::server::Settings`].
//!
//! The server is protocol code: it never prints, and it knows no log format. The events
//! carry what Postfix's smtpd logs (its `connect from`, `NOQUEUE: reject:`, queue-id and
//! `disconnect` lines), structured, so the tool decides how lines look and where they go
//! (mreceive's `log.rs`: key=value lines on stderr or syslog).

use super::Reply;
use crate::envelope::Envelope;
use std::net::IpAddr;
use std::time::Duration;

/// Who the session is with, as known when the event happens.
#[derive(Clone, Copy, Debug)]
pub struct Client<'a> {
    /// The session's id, random, in every line of the session (Postfix's queue id ties its
    /// lines together the same way).
    pub session: &'a str,
    /// The client's address, when known.
    pub ip: Option<IpAddr>,
    /// The name it gave in EHLO or HELO (client-controlled text).
    pub helo: Option<&'a str>,
    /// The user it authenticated as.
    pub auth: Option<&'a str>,
    /// TLS protocol and cipher, when the session is encrypted.
    pub tls: Option<&'a str>,
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The client said QUIT.
    Quit,
    /// The client closed the connection (inside a transaction or not).
    Closed,
    /// The client sent nothing for the timeout.
    Timeout,
    /// Too many bad commands.
    Errors,
    /// Too many failed AUTH attempts.
    Auth,
    /// The TLS handshake failed.
    Tls,
    /// The server is shutting down.
    Shutdown,
    /// Reading or writing the connection failed.
    Io,
}

impl End {
    /// The word a log line shows.
    pub fn name(self) -> &'static str {
        match self {
            End::Quit => "quit",
            End::Closed => "closed",
            End::Timeout => "timeout",
            End::Errors => "errors",
            End::Auth => "auth",
            End::Tls => "tls",
            End::Shutdown => "shutdown",
            End::Io => "io",
        }
    }
}

/// One thing worth a line in the log.
#[derive(Debug)]
pub enum Event<'a> {
    /// A client connected (before the greeting).
    Connect,
    /// TLS is up (STARTTLS, or implicit TLS before the greeting).
    Tls,
    /// The TLS handshake failed: the client's problem or our certificate's.
    TlsFailed {
        /// What the handshake said.
        error: &'a std::io::Error,
    },
    /// A command the server refused for policy (not for syntax or sequence, which only count
    /// towards the error limit): MAIL (AUTH required, too big, not ASCII), RCPT (relay
    /// denied, unknown user, too many), AUTH (bad credentials). Postfix's `reject:` lines.
    Reject {
        /// The verb: MAIL, RCPT, AUTH.
        command: &'static str,
        /// The sender of the transaction, when one was given.
        from: Option<&'a str>,
        /// The refused recipient (RCPT).
        to: Option<&'a str>,
        /// The user name tried (AUTH), when it could be read.
        user: Option<&'a str>,
        /// What the client was told.
        reply: &'a Reply,
    },
    /// The end of a message's data, and what became of it.
    Message {
        /// The message's id, the same as in its `Received:` header.
        id: &'a str,
        /// Its envelope (with the size and body type).
        envelope: &'a Envelope,
        /// For each recipient, the local user who gets it, or `None` (another domain's,
        /// queued for relaying).
        users: &'a [Option<String>],
        /// The reply to the end of data.
        reply: &'a Reply,
        /// For each recipient, in order, what the hand-off said; `None` when the message
        /// was refused before (its content: a bare LF, too big, a loop).
        results: Option<&'a [crate::Result<()>]>,
        /// For each recipient, the queue entry it waits in now, where it was queued
        /// (another domain's, or a local one that failed for now): logged `status=queued`.
        queued: &'a [Option<String>],
        /// How long the hand-off took.
        delay: Duration,
    },
    /// The session is over.
    Disconnect {
        /// Why.
        end: End,
        /// The error, for [`End::Io`] and [`End::Tls`].
        error: Option<&'a std::io::Error>,
        /// Command lines read.
        commands: u32,
        /// Bad or refused commands.
        errors: u32,
        /// Messages accepted (250 to their end of data).
        accepted: usize,
    },
}

/// Where the server's events go. The sink must be quick and must not fail: a log that
/// cannot be written never stops the mail.
pub trait Log: Send + Sync {
    /// One event of the session `client`.
    fn log(&self, client: &Client<'_>, event: &Event<'_>);
}

/// A closure is a log (tests collect events in one; `|_: &Client, _: &Event| {}` logs
/// nothing).
impl<F: Fn(&Client<'_>, &Event<'_>) + Send + Sync> Log for F {
    fn log(&self, client: &Client<'_>, event: &Event<'_>) {
        self(client, event)
    }
}
