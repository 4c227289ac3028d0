//! Local delivery: the steps every delivery into a mailbox here shares (mdeliver, mreceive's
//! built-in Maildir delivery, and next mfetch and the queue's local route): the Delivered-To
//! loop check, the trace headers ([`crate::message::trace`]), filtering ([`rules`]), and
//! storing ([`crate::store::maildir`]); [`command`] runs a delivery program fed the message.
//!
//! One place, so a message delivered by `mreceive --maildir-base` is byte for byte what
//! `mdeliver` would have stored, with the same durability.

pub mod command;
pub mod rules;

use crate::exit::Result;
use crate::message::buffer::Buffer;
use crate::message::header;
use crate::message::trace::{check_loop, trace};
use crate::store::maildir::{Delivered, Maildir};
use std::path::Path;

/// Deliver `msg` into the inbox of the Maildir at `root` (created when missing), for
/// `recipient` from `sender`: loop check, trace headers, Maildir protocol. Returns when the
/// message is on disk.
pub fn deliver_inbox(
    root: &Path,
    sender: &str,
    recipient: &str,
    msg: &mut Buffer,
) -> Result<Delivered> {
    check_loop(header::block(msg.head()), recipient)?;
    let trace = trace(Some(sender), Some(recipient));
    Maildir::open(root)?.deliver("", |w| {
        w.write_all(&trace)?;
        msg.copy_to(w)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn delivers_with_trace() {
        let dir = tempfile::tempdir().unwrap();
        let mut msg = Buffer::new();
        msg.write_all(b"Subject: s\n\nhi\n").unwrap();
        let d = deliver_inbox(&dir.path().join("M"), "a@y", "b@x", &mut msg).unwrap();
        assert_eq!(
            std::fs::read(d.path).unwrap(),
            b"Return-Path: <a@y>\nDelivered-To: b@x\nSubject: s\n\nhi\n"
        );
    }
}
