//! mailpipe: Internet mail as a Unix toolchain of small commands.
//!
//! The domain lives here; each `src/bin/<tool>.rs` is a few lines that hand the command line
//! to [`run::main`] and the tool's module under [`cmd`]. Layers, each importing only from
//! those below it (docs/ARCHITECTURE.md draws them):
//!
//! - [`cmd`]: one module per tool, its flags, its run, its man page text; beside it, hidden,
//!   `fuzz`: the fuzz targets' entry points (fuzz/ and its regression tests), over every layer.
//! - [`account`]: the configuration's accounts, typed: the sending (SMTP) keys apart from
//!   the fetching (POP3, IMAP) ones, and the table of every key.
//! - [`relay`]: mail on its way to the next hop: routing a recipient (static routes, DNS
//!   MX), SMTP to the destinations, local routes through [`deliver`], bounces, and sending
//!   through an account's server (msubmit's and mrelay's account routes).
//! - [`fetch`]: mail on a server's mailbox (POP3, IMAP) brought into a Maildir or an MDA,
//!   never twice, never lost (mfetch's engine, beside [`relay`]).
//! - [`deliver`]: the local delivery pipeline (loop check, trace, rules, dedupe, store) and
//!   delivery to a command.
//! - [`smtp`]: the protocol, client and server, sans-IO pieces below both.
//! - [`pop3`]: the POP3 protocol, client (mfetch) and server (maccess).
//! - [`imap`]: the IMAP client (mfetch).
//! - [`store`]: Maildirs, the queue, the dedupe cache: durable storage.
//! - [`net`]: connections with deadlines, TLS, SASL, the accept loop.
//! - [`message`]: RFC 5322 and MIME text: headers, addresses, folding, bodies, trace fields.
//! - The ground: exit codes ([`exit`]), the binary edge ([`run`]), the envelope
//!   ([`envelope`]), configuration ([`config`]) and msmtp's aliases file ([`aliases`]), the
//!   password file of the servers ([`passwd`]), log lines and syslog ([`log`]) and the
//!   generated documentation's renderer ([`docs`]).

pub mod account;
pub mod aliases;
pub mod cmd;
pub mod config;
pub mod deliver;
pub mod docs;
pub mod envelope;
pub mod exit;
pub mod fetch;
#[doc(hidden)]
pub mod fuzz;
pub mod imap;
pub mod log;
pub mod message;
pub mod net;
pub mod passwd;
pub mod pop3;
pub mod relay;
pub mod run;
pub mod smtp;
pub mod store;

pub use exit::{Code, Context, Error, Result};
