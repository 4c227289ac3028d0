//! IMAP (RFC 3501 IMAP4rev1, RFC 9051 IMAP4rev2): the client mfetch reads mailboxes with,
//! beside [`crate::pop3`] and on the same network layer ([`crate::net::conn`]'s transports
//! with their timeouts, [`crate::net::tls`], [`crate::net::sasl`]).
//!
//! [`response`] is the server's grammar as a client reads it, [`command`] how a client
//! writes its arguments; [`client`] is the session.
//!
//! Why a grammar of our own and not a codec crate. imap-codec 1.0 (stable) decodes a
//! response only from a buffer that holds all of it, literals included: a `BODY[]` of a
//! 40 MB message is in memory whole before the first byte can go to the Maildir, and a
//! server that announces a 2 GB literal leaves the choice between buffering it and giving
//! up on that message for good (a client cannot refuse a literal, RFC 3501 §4.3). Its
//! `Incomplete` answer also means parsing again from the start after every read, which is
//! quadratic in the size of a large message read in 64 KiB pieces. imap-next 0.3 drives the
//! flow on top of imap-codec 2.0.0-alpha (an alpha, without ESEARCH, which IMAP4rev2's UID
//! SEARCH answers with) and buffers literals the same way up to its own limit. What mfetch
//! reads is the small part of the grammar a client meets (status responses with codes,
//! continuations, untagged data of atoms, strings, literals, NIL and lists), and streaming a
//! literal needs the reader to stop at `{n}` and hand the next n bytes over: about 300
//! lines, tested against split reads and hostile input, and against Dovecot. Commands are
//! few and written out where they are sent.

pub mod client;
pub mod command;
pub mod response;
