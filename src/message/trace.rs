//! The trace fields a delivery writes and reads: `Return-Path:` and `Delivered-To:` (RFC 5321
//! §4.4), the Delivered-To loop check, and the stamp an MTA's local delivery puts on top of
//! a message before it runs us. Used by every delivery (mdeliver, mreceive's built-in one,
//! a rules pipe), so a message stored by any of them carries the same trace.

use crate::exit::{Code, Error, Result};
use crate::message::header;
use std::io::Write;

/// qmail-local's loop rule: a message that already carries our Delivered-To: went round.
/// Permanent (65), so the MTA bounces it instead of trying forever.
///
/// One exception: the agent that runs us may have stamped this very delivery on top of the
/// message before, after doing its own loop check: Postfix's local(8) (`mailbox_command`,
/// by default) and pipe(8) `flags=RD` write `Return-Path:`, `X-Original-To:`,
/// `Delivered-To:`; OpenSMTPD's mda `Return-Path:` and `Delivered-To:` (only the latter for
/// a null sender); getmail `Delivered-To:` above its `Received:`. In that leading run of
/// those three fields the recipient may appear once; any other Delivered-To: for it is a
/// loop. (Our own prepended pair looks the same, so a stored copy fed straight back into
/// mdeliver by hand is stored once more: a redelivery, not a loop. A loop goes through a
/// command, which gets a second `Delivered-To:` ([`trace_for_command`]), or through an MTA,
/// which puts its Received: above the stamp.)
pub fn check_loop(block: &[u8], rcpt: &str) -> Result<()> {
    let fields = header::fields(block);
    let ours = |f: &header::Field| {
        f.is("Delivered-To")
            && header::bare_addr(&f.value_raw()).eq_ignore_ascii_case(header::bare_addr(rcpt))
    };
    let allowed = usize::from(leading_stamp(&fields).any(&ours));
    if fields.iter().filter(|f| ours(f)).count() > allowed {
        return Err(Error::new(
            Code::DataErr,
            "mail loop",
            format!("message was already delivered to {rcpt}"),
        ));
    }
    Ok(())
}

/// The leading run of `Return-Path:`, `X-Original-To:` and `Delivered-To:` fields: the stamp
/// an MTA's local delivery puts on a message before it runs us (see [`check_loop`]).
fn leading_stamp<'a>(
    fields: &'a [header::Field<'a>],
) -> impl Iterator<Item = &'a header::Field<'a>> {
    fields
        .iter()
        .take_while(|f| f.is("Return-Path") || f.is("X-Original-To") || f.is("Delivered-To"))
}

/// [`trace`] for a copy stored in a Maildir: less what the stamp on top of `block` already
/// says for the same sender and recipient. Under Postfix (`mailbox_command`, pipe(8)
/// `flags=DR`) the message arrives stamped with `Return-Path:` and `Delivered-To:` for this
/// very delivery; saying them again only doubles them. The stamp's `Delivered-To:` stays in
/// the stored copy, so the copy coming back through an MTA (under a `Received:`) is still a
/// loop for [`check_loop`].
pub fn trace_over(block: &[u8], sender: Option<&str>, recipient: Option<&str>) -> Vec<u8> {
    let stamped = |name: &str, addr: &&str| stamp_has(block, name, addr);
    let sender = sender.filter(|s| !stamped("Return-Path", s));
    let recipient = recipient.filter(|r| !stamped("Delivered-To", r));
    separated(block, trace(sender, recipient))
}

/// [`trace`] for a message handed to a command (a rules `pipe`): `Delivered-To:` is always
/// added, even over the stamp's own. The command may deliver it again (into mdeliver, or
/// through a script that calls it): the second `Delivered-To:` for the recipient is what
/// makes that a loop for [`check_loop`] instead of a delivery that runs for ever.
pub fn trace_for_command(block: &[u8], sender: Option<&str>, recipient: Option<&str>) -> Vec<u8> {
    let sender = sender.filter(|s| !stamp_has(block, "Return-Path", s));
    separated(block, trace(sender, recipient))
}

/// True when the leading stamp of `block` has a field `name` for address `addr`.
fn stamp_has(block: &[u8], name: &str, addr: &str) -> bool {
    let fields = header::fields(block);
    leading_stamp(&fields).any(|f| {
        f.is(name)
            && header::bare_addr(&f.value_raw()).eq_ignore_ascii_case(header::bare_addr(addr))
    })
}

/// `t`, with an empty line after it when the message's first line would fold into the
/// Delivered-To: we write above it ([`header::would_fold`]): the message is then all body
/// (as mreceive makes it).
fn separated(block: &[u8], mut t: Vec<u8>) -> Vec<u8> {
    if !t.is_empty() && header::would_fold(block) {
        t.push(b'\n');
    }
    t
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_and_loop() {
        assert_eq!(
            trace(Some(""), Some("b@x")),
            b"Return-Path: <>\nDelivered-To: b@x\n"
        );
        // Went round through an MTA: its Received: stands above our earlier stamp.
        assert!(check_loop(b"Received: by mx\nDelivered-To: B@x\n", "b@x").is_err());
        assert!(check_loop(b"Received: by mx\nDelivered-To: c@x\n", "b@x").is_ok());
        // The stamp of the agent running us, for this very delivery, is not a loop; a second
        // one for the same recipient is.
        let stamp = b"Return-Path: <a@y>\nDelivered-To: b@x\nSubject: s\n";
        assert!(check_loop(stamp, "b@x").is_ok());
        let twice = b"Delivered-To: b@x\nReceived: by mx\nDelivered-To: b@x\n";
        assert!(check_loop(twice, "b@x").is_err());
        // Postfix's stamp is not said twice; a stamp that says something else stays.
        assert_eq!(trace_over(stamp, Some("A@Y"), Some("B@x")), b"");
        // A command gets the second Delivered-To: that ends a loop through it.
        assert_eq!(
            trace_for_command(stamp, Some("A@Y"), Some("b@x")),
            b"Delivered-To: b@x\n"
        );
        let rp_only = b"Return-Path: <a@y>\nSubject: s\n";
        assert_eq!(
            trace_over(rp_only, Some("a@y"), Some("b@x")),
            b"Delivered-To: b@x\n"
        );
        assert_eq!(
            trace_over(stamp, Some("c@y"), Some("d@x")),
            b"Return-Path: <c@y>\nDelivered-To: d@x\n"
        );
        assert_eq!(
            trace_over(b" (forged)\nSubject: s\n", None, Some("b@x")),
            b"Delivered-To: b@x\n\n"
        );
        assert_eq!(trace_over(b" (forged)\n", None, None), b"");
        let below = b"Subject: s\nReturn-Path: <a@y>\n";
        assert_eq!(
            trace_over(below, Some("a@y"), None),
            b"Return-Path: <a@y>\n"
        );
    }
}
