//! The message: everything about RFC 5322 and MIME text, with no I/O but reading a message in.
//!
//! [`buffer`] reads a message of any size into memory or an unlinked temporary file;
//! [`header`] scans a header block (the one field-name rule, the one guard against
//! content folding into a field we prepend); [`fold`] writes header fields
//! (RFC 2047 encoded words, RFC 2231 parameters, folding); [`address`] parses and formats
//! mailboxes and address lists; [`mime`] builds MIME bodies; [`stamp`] makes Date and
//! Message-ID; [`trace`] reads and writes the trace fields a delivery adds (Return-Path,
//! Delivered-To) and spots loops; [`compose`] is the message being composed (mcompose);
//! [`dsn`] writes delivery status notifications (bounces) about a message.
//!
//! Layering inside: `fold` and `header` are the ground; `address` uses `fold`; `mime` uses
//! both; `compose` and `dsn` use them (`dsn` also `stamp` and `buffer`).

pub mod address;
pub mod buffer;
pub mod compose;
pub mod dkim;
pub mod downgrade;
pub mod dsn;
pub mod fold;
pub mod header;
pub mod mime;
pub mod stamp;
pub mod trace;
