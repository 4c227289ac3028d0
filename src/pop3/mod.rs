//! POP3 (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH RFC 5034): the protocol for both
//! sides, beside [`crate::smtp`] and on the same network layer ([`crate::net::conn`] with its
//! deadlines and bounded reads, [`crate::net::tls`], [`crate::net::sasl`]).
//!
//! [`client`] is mfetch's side (a maildrop listed, scanned with TOP, fetched, deleted);
//! [`server`] is maccess's (a Maildir served to a client), on [`command`]'s grammar. Multi-line content travels
//! dot-stuffed, as SMTP's DATA does, so both sides read it through `net::conn`'s `LineSink`.

pub mod client;
pub(crate) mod command;
pub mod server;
