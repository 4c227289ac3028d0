//! Local delivery, the steps mdeliver and mreceive's built-in Maildir delivery share: the
//! Delivered-To loop check, the trace headers, and storing one message in one inbox.
//!
//! One place, so a message delivered by `mreceive --maildir-base` is byte for byte what
//! `mdeliver` would have stored, with the same durability (see [`crate::maildir`]).

use crate::exit::{Code, Error, Result};
use crate::header;
use crate::input::Spool;
use crate::maildir::{Delivered, Maildir};
use std::io::Write;
use std::path::Path;

/// qmail-local's loop rule: a message that already carries our Delivered-To: went round.
/// Permanent (65), so the MTA bounces it instead of trying forever.
///
/// One exception: Postfix's local(8) (for `mailbox_command`, by default) and pipe(8) with
/// `flags=R…D` prepend their own `Return-Path:`, `X-Original-To:` and `Delivered-To:` for this
/// very delivery before running us, after doing their own loop check. That stamp, a leading
/// run of those fields that starts with Return-Path:, may name the recipient once; any
/// other Delivered-To: for it is a loop. (Our own prepended pair looks the same, so a
/// message piped straight back into mdeliver is stored once more and refused the next time
/// round: the loop still ends.)
pub fn check_loop(block: &[u8], rcpt: &str) -> Result<()> {
    let fields = header::fields(block);
    let ours = |f: &header::Field| {
        f.is("Delivered-To")
            && header::bare_addr(&f.value_raw()).eq_ignore_ascii_case(header::bare_addr(rcpt))
    };
    let stamp = fields
        .iter()
        .take_while(|f| f.is("Return-Path") || f.is("X-Original-To") || f.is("Delivered-To"))
        .collect::<Vec<_>>();
    let allowed = match stamp.first() {
        Some(f) if f.is("Return-Path") && stamp.iter().any(|f| ours(f)) => 1,
        _ => 0,
    };
    if fields.iter().filter(|f| ours(f)).count() > allowed {
        return Err(Error::new(
            Code::DataErr,
            "mail loop",
            format!("message was already delivered to {rcpt}"),
        ));
    }
    Ok(())
}

/// The trace headers a delivery prepends: `Return-Path:` from the envelope sender (`<>` for
/// the null sender) and `Delivered-To:` from the recipient (RFC 5321 §4.4).
pub fn trace(sender: Option<&str>, recipient: Option<&str>) -> Vec<u8> {
    let mut t = Vec::new();
    if let Some(sender) = sender {
        let _ = writeln!(t, "Return-Path: <{}>", header::bare_addr(sender));
    }
    if let Some(rcpt) = recipient {
        let _ = writeln!(t, "Delivered-To: {}", header::bare_addr(rcpt));
    }
    t
}

/// Deliver `msg` into the inbox of the Maildir at `root` (created when missing), for
/// `recipient` from `sender`: loop check, trace headers, Maildir protocol. Returns when the
/// message is on disk.
pub fn deliver_inbox(
    root: &Path,
    sender: &str,
    recipient: &str,
    msg: &mut Spool,
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

    #[test]
    fn trace_and_loop() {
        assert_eq!(
            trace(Some(""), Some("b@x")),
            b"Return-Path: <>\nDelivered-To: b@x\n"
        );
        assert!(check_loop(b"Delivered-To: B@x\n", "b@x").is_err());
        assert!(check_loop(b"Delivered-To: c@x\n", "b@x").is_ok());
        let dir = tempfile::tempdir().unwrap();
        let mut msg = Spool::new();
        msg.write_all(b"Subject: s\n\nhi\n").unwrap();
        let d = deliver_inbox(&dir.path().join("M"), "a@y", "b@x", &mut msg).unwrap();
        assert_eq!(
            std::fs::read(d.path).unwrap(),
            b"Return-Path: <a@y>\nDelivered-To: b@x\nSubject: s\n\nhi\n"
        );
    }
}
