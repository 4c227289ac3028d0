//! The fetch engine: mail on a server's mailbox brought into a local Maildir (or an MDA),
//! mfetch's work, protocol-neutral so POP3 ([`crate::pop3::client`]) and IMAP plug into it
//! through one trait, [`Source`].
//!
//! Why a layer of its own beside `relay/`: the engine's promises (never twice, never lost)
//! are the same whatever protocol lists and reads the messages, so they are written once:
//!
//! 1. **List** the mailbox (ids and sizes); drop what the account's state has already seen.
//! 2. **Choose**: size and date rules, a filter on the headers (mpop's 0/1/2 contract).
//! 3. **Fetch** a batch, each message into the Maildir through the `deliver` pipeline with
//!    the sync of `new/` shared by the batch (one directory fsync), or to an MDA each.
//! 4. **Record** the batch in the state (durably), only after the batch is durable.
//! 5. **Delete** on the server (unless kept), only after both; then finish the session.

use crate::Result;

/// One message as a mailbox lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The session's handle for it: POP3's message number, IMAP's UID.
    pub number: u32,
    /// The stable identity kept in the state: POP3's UIDL, IMAP's UID in decimal.
    pub id: String,
    /// Its size in octets as the server says it (RFC 1939 LIST, IMAP RFC822.SIZE).
    pub size: u64,
}

/// A mailbox on a server as the engine sees it: POP3's maildrop or one IMAP folder.
pub trait Source {
    /// What numbers the ids: None for POP3 (UIDLs are the ids); IMAP's UIDVALIDITY.
    fn epoch(&self) -> Option<u32>;
    /// Every message now in the mailbox: a stable id (POP3 UIDL, IMAP UID) and its size.
    fn list(&mut self) -> Result<Vec<Listed>>;
    /// The header of each, pipelined where the server allows (TOP n 0 / BODY.PEEK[HEADER]).
    fn headers(
        &mut self,
        which: &[Listed],
        each: &mut dyn FnMut(&Listed, &[u8]) -> Result<()>,
    ) -> Result<()>;
    /// Each whole message, streamed to `each` in bounded memory (dot-unstuffed / literal read).
    fn fetch(
        &mut self,
        which: &[Listed],
        each: &mut dyn FnMut(&Listed, &mut dyn std::io::Read) -> Result<()>,
    ) -> Result<()>;
    /// Delete these on the server (DELE; IMAP \Deleted + UID EXPUNGE or MOVE).
    fn delete(&mut self, which: &[Listed]) -> Result<()>;
    /// End the session (QUIT commits POP3's deletions; LOGOUT).
    fn finish(self: Box<Self>) -> Result<()>;
}
