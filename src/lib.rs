//! mailpipe: Internet mail as a Unix toolchain of small commands.
//!
//! The domain lives here; each `src/bin/<tool>.rs` is a few lines that hand the command line
//! to [`run::main`] and the tool's module under [`cmd`]. Shared concerns have one module each:
//! exit codes ([`exit`]), the binary edge ([`run`]), message input and spooling ([`input`]),
//! header access ([`header`]), Maildir delivery ([`maildir`]), configuration ([`config`]),
//! addresses ([`address`]), header encoding and folding ([`fold`]), MIME bodies ([`mime`]),
//! the message being composed ([`compose`]), SMTP for client and server ([`smtp`]), TLS
//! ([`tls`]), the outgoing spool ([`spool`]), message stamps ([`stamp`]), the generated
//! documentation ([`docs`]), and mdeliver's filtering rules ([`rules`]) and duplicate
//! suppression ([`dedupe`]), local delivery steps shared by mdeliver and mreceive
//! ([`local`]), mreceive's hand-off of accepted mail ([`handoff`]) and its password file
//! ([`passwd`]).

pub mod address;
pub mod cmd;
pub mod compose;
pub mod config;
pub mod dedupe;
pub mod docs;
pub mod exit;
pub mod fold;
pub mod handoff;
pub mod header;
pub mod input;
pub mod local;
pub mod maildir;
pub mod mime;
pub mod passwd;
pub mod rules;
pub mod run;
pub mod smtp;
pub mod spool;
pub mod stamp;
pub mod tls;

pub use exit::{Code, Context, Error, Result};
