//! The relay's DKIM signing (RFC 6376): a message leaving by the mx route whose From: domain
//! has a `dkim DOMAIN SELECTOR KEYFILE` line gets a `DKIM-Signature` field in front of it.
//!
//! Signed at each attempt, not when queued: mail reaches the queue from mreceive and msubmit
//! too, and the entry stays as it came (a changed key or selector applies to queued mail).
//! The field is written before the queued bytes as they stream out, so the queue file is
//! never rewritten; the message is read once whole to sign it (mail-auth signs a slice), a
//! cost bounded by the queue's size limit and paid only for signed domains.

use crate::exit::Result;
use crate::message::dkim::{self, Signer};
use crate::smtp::client::Content;
use crate::store::queue::Job;
use std::io::Read;
use std::sync::Arc;

/// The field for `job`'s message, when a signer signs for its From: domain. A failure to
/// read or sign sends the message unsigned (a DKIM signature is a claim, not a condition
/// of delivery; RFC 6376 §6.1: unsigned mail is treated as such) and says why.
pub fn field(
    signers: &[Arc<Signer>],
    job: &Job<'_>,
) -> std::result::Result<Option<Vec<u8>>, String> {
    if signers.is_empty() {
        return Ok(None);
    }
    let mut msg = Vec::new();
    job.message()
        .read_to_end(&mut msg)
        .map_err(|e| format!("dkim: reading the message: {e}"))?;
    let Some(signer) = dkim::pick(signers, &msg) else {
        return Ok(None);
    };
    signer
        .sign(&msg)
        .map(Some)
        .map_err(|e| format!("dkim: {}: {e}", signer.domain))
}

/// The queued message with the signature in front.
pub struct Signed<'a, C> {
    /// The `DKIM-Signature` field.
    pub field: &'a [u8],
    /// The message.
    pub inner: C,
}

impl<C: Content> Content for Signed<'_, C> {
    fn open(&mut self) -> Result<Box<dyn Read + '_>> {
        let field = self.field;
        Ok(Box::new(field.chain(self.inner.open()?)))
    }
}
