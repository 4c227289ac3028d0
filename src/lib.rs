//! mailpipe: Internet mail as a Unix toolchain of small commands.
//!
//! The domain lives here; each `src/bin/<tool>.rs` is a few lines that hand the command line
//! to [`run::main`] and the tool's module under [`cmd`]. Shared concerns have one module each:
//! exit codes ([`exit`]), the binary edge ([`run`]), message input and spooling ([`input`]),
//! header access ([`header`]), Maildir delivery ([`maildir`]), configuration ([`config`]),
//! addresses ([`address`]), header encoding and folding ([`fold`]), MIME bodies ([`mime`]),
//! the message being composed ([`compose`]) and the generated documentation ([`docs`]).

pub mod address;
pub mod cmd;
pub mod compose;
pub mod config;
pub mod docs;
pub mod exit;
pub mod fold;
pub mod header;
pub mod input;
pub mod maildir;
pub mod mime;
pub mod run;
pub mod stamp;

pub use exit::{Code, Context, Error, Result};
