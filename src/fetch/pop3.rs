//! A POP3 maildrop as the engine's [`Source`]: the adapter between the protocol's client
//! ([`crate::pop3::client`], which knows message numbers) and the engine (which knows
//! [`Listed`] messages). Here, in the fetch layer, so the protocol never imports upward.

use super::{Listed, Source};
use crate::Result;
use crate::pop3::client::Client;
use std::io::Read;

/// A logged-in POP3 session as a [`Source`]: UIDLs are the ids, no epoch.
pub struct Pop3(pub Client);

impl Source for Pop3 {
    fn epoch(&self) -> Option<u32> {
        None
    }

    fn list(&mut self) -> Result<Vec<Listed>> {
        Ok(self
            .0
            .list()?
            .into_iter()
            .map(|e| Listed {
                number: e.number,
                id: e.uidl,
                size: e.size,
            })
            .collect())
    }

    fn headers(
        &mut self,
        which: &[Listed],
        each: &mut dyn FnMut(&Listed, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let numbers: Vec<u32> = which.iter().map(|m| m.number).collect();
        self.0.top(&numbers, &mut |i, head| each(&which[i], head))
    }

    fn fetch(
        &mut self,
        which: &[Listed],
        each: &mut dyn FnMut(&Listed, &mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        let numbers: Vec<(u32, u64)> = which.iter().map(|m| (m.number, m.size)).collect();
        self.0.retr(&numbers, &mut |i, r| each(&which[i], r))
    }

    fn delete(&mut self, which: &[Listed]) -> Result<()> {
        let numbers: Vec<u32> = which.iter().map(|m| m.number).collect();
        self.0.dele(&numbers)
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.0.quit()
    }
}
