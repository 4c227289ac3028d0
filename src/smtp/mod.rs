//! SMTP: the project's one protocol module, for the client (msubmit, mrelay) and the server
//! (mreceive).
//!
//! The protocol pieces are sans-IO, so both sides share them and tests need no sockets:
//! [`reply`] parses and formats replies with enhanced status codes, [`command`] formats and
//! parses commands and paths, [`ehlo`] reads and writes capabilities, [`data`] encodes what a
//! client sends as DATA (line ends, dot-stuffing, terminator), and [`envelope`] holds a transaction's envelope and replies. The blocking client, over any
//! transport ([`crate::net::conn::Io`]) with the TLS modes of [`crate::net::tls`], is [`client`]. The server (mreceive) is [`server`], a session state machine over
//! [`crate::net::conn`] (bounded reads, STARTTLS), with [`inbound`] for what a server reads as DATA or BDAT
//! (the one DATA decoder), [`policy`] for the recipients an MX accepts and [`event`] for what
//! it tells the operator's log. The two sides of
//! DATA are tested against each other: `inbound`'s tests read `data`'s output back through
//! `net::conn`, as mreceive does.
//!
//! Why not the `smtp-proto` crate: its parsers cover much of this, but the parts that matter
//! most here are small and policy-laden (bounded reply reading, the reply code a server gives
//! for each parse error, a streaming DATA encoder that must never emit an early end of data),
//! and owning them keeps one obvious place to read and fix, with no second SMTP vocabulary.

pub mod client;
pub mod command;
pub mod data;
pub mod ehlo;
pub mod envelope;
pub mod event;
pub mod inbound;
pub mod policy;
pub mod reply;
pub mod server;

pub use client::{Envelope, Options, Outcome, Recipient, Session, Timeouts};
pub use command::{Command, CommandError, Param};
pub use data::DataEncoder;
pub use ehlo::Capabilities;
pub use reply::{EnhancedCode, Reply, ReplyParser};
