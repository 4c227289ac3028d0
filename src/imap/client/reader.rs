//! The reader of one response for the session: each line under a deadline, literals held
//! in memory up to a limit, and a FETCH's `BODY[]` literal handed to the caller's sink as
//! it arrives (matched to its UID, refused when sent twice).

use super::{BodySink, Listed, Stream, items, uid_of};
use crate::exit::Error;
use crate::imap::response::{Feed, Literal, MAX_LINE, Value, Wire};
use std::collections::{HashMap, HashSet};
use std::io;
use std::time::{Duration, Instant};

/// The reader of one response: lines under a deadline, literals bounded or streamed.
pub(super) struct Reader<'a, 'b> {
    pub(super) wire: &'a mut Wire<Stream>,
    pub(super) timeout: Duration,
    pub(super) max_literal: usize,
    /// Where a `BODY[]` literal goes.
    pub(super) body: Option<&'a mut BodySink<'b>>,
    pub(super) seq_uid: &'a HashMap<u32, u32>,
    /// UIDs whose body went to the sink in this command.
    pub(super) seen: &'a mut HashSet<u32>,
    /// Why the sink failed, when it did (the parser sees only an I/O error).
    pub(super) sink_error: Option<Error>,
}

impl Reader<'_, '_> {
    fn timing(&mut self, deadline: bool) {
        let t = self.timeout.max(Duration::from_millis(1));
        if let Some(io) = self.wire.get_mut().io() {
            io.set_timeout(t);
            io.set_deadline(if deadline {
                Instant::now().checked_add(t)
            } else {
                None
            });
        }
    }

    pub(super) fn line(&mut self) -> io::Result<Vec<u8>> {
        self.timing(true);
        let r = self.wire.line(MAX_LINE);
        self.timing(false);
        r
    }
}

impl Feed for Reader<'_, '_> {
    fn line(&mut self) -> io::Result<Vec<u8>> {
        Reader::line(self)
    }

    fn literal(&mut self, n: u64, path: &[Vec<Value>]) -> io::Result<Value> {
        let is_body = path.len() == 2
            && path[0]
                .get(1)
                .and_then(Value::atom)
                .is_some_and(|a| a.eq_ignore_ascii_case("FETCH"))
            && path[1]
                .last()
                .and_then(Value::atom)
                .is_some_and(|a| a.eq_ignore_ascii_case("BODY[]"));
        if !is_body || self.body.is_none() {
            self.timing(false);
            return self.wire.literal_vec(n, self.max_literal).map(Value::Str);
        };
        // The UID before the body (Dovecot, Gmail), else by the sequence number listed.
        let before = items(&path[1][..path[1].len() - 1]);
        let uid = match before.get("UID") {
            Some(v) => uid_of(v),
            None => path[0]
                .first()
                .and_then(Value::number)
                .and_then(|s| u32::try_from(s).ok())
                .and_then(|s| self.seq_uid.get(&s).copied()),
        };
        let Some(uid) = uid else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message body without a UID",
            ));
        };
        if !self.seen.insert(uid) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("UID {uid} sent twice"),
            ));
        }
        self.timing(false);
        let Some(sink) = self.body.as_mut() else {
            return Err(io::Error::other("no sink"));
        };
        let mut lit: Literal<'_, Stream> = self.wire.literal(n);
        if let Err(e) = sink(Listed { uid, size: n }, &mut lit) {
            self.sink_error = Some(e);
            return Err(io::Error::other("sink failed"));
        }
        lit.finish()?;
        Ok(Value::Taken)
    }
}
