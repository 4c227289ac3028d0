//! One IMAP folder as the fetch engine's [`Source`]: the IMAP client ([`crate::imap::client`])
//! with the folder selected, UIDs as the ids and UIDVALIDITY as their epoch.
//!
//! Why a file of fingerprints beside the engine's state (`KEY.imap`: `UIDVALIDITY UID SIZE
//! MESSAGE-ID` a line): a new UIDVALIDITY (a restored server, a rebuilt index, a migration)
//! says every UID we recorded now means nothing (RFC 3501 §2.3.1.1). Fetching the folder
//! again would give the user a second copy of everything (mbsync's and offlineimap's
//! failures, offlineimap#294); so the messages already durable here are found again by
//! Message-ID and size ([`ImapFolder::carried`]) and only the rest is fetched. The line of
//! a message is written when its body passed through (before it is durable), and is only
//! believed for a UID the engine's state records as durable: a fingerprint ahead of the
//! mail never hides a message. A message without a Message-ID has no fingerprint and is
//! fetched again after such a change (at least once, never lost).

use super::{Listed, Source};
use crate::exit::{Code, Error, Result};
use crate::imap::client::{Client, Mailbox};
use crate::store::maildir::{open_private, sync_dir};
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The first line of a fingerprint file.
const HEADER: &str = "mfetch-imap 1";

/// What to do with fetched mail on the server when it is not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// `\Deleted`, then UID EXPUNGE (RFC 4315).
    Expunge,
    /// UID MOVE to this folder (RFC 6851): a server-side trash or archive.
    MoveTo(String),
}

/// One selected folder of an IMAP session.
pub struct ImapFolder {
    client: Client,
    mailbox: Mailbox,
    removal: Removal,
    /// `KEY.imap` in the state directory.
    prints_path: PathBuf,
    /// UIDVALIDITY, UID → size and Message-ID, as the file holds them.
    prints: HashMap<(u32, u32), (u64, String)>,
    /// Lines to add at the end of the fetch.
    new_prints: Vec<String>,
    /// Headers are for `--scan` only: Date, From and Subject are all that is read.
    pub scan_only: bool,
}

/// `KEY.imap` for the state `key` in `dir`.
pub fn prints_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{}.imap", super::state::file_key(key)))
}

fn io_error(what: &Path, e: io::Error) -> Error {
    Error::io(Code::TempFail, what.display().to_string(), e)
}

/// The Message-ID of a header block (unfolded), if any.
fn message_id(head: &[u8]) -> Option<String> {
    let (headers, _) = mailparse::parse_headers(head).ok()?;
    use mailparse::MailHeaderMap;
    let v = headers.get_first_value("Message-ID")?;
    let v = v.trim();
    (!v.is_empty() && !v.contains(char::is_whitespace)).then(|| v.to_string())
}

/// A reader that keeps the start of what passes (up to the end of the header or 64 KiB).
struct Sniff<'a> {
    inner: &'a mut dyn Read,
    head: Vec<u8>,
    done: bool,
}

impl Read for Sniff<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.done {
            self.head.extend_from_slice(&buf[..n]);
            if memchr::memmem::find(&self.head, b"\r\n\r\n").is_some()
                || memchr::memmem::find(&self.head, b"\n\n").is_some()
                || self.head.len() >= 64 * 1024
            {
                self.done = true;
            }
        }
        Ok(n)
    }
}

/// A message as IMAP sends it (CRLF line ends, RFC 3501 §4.3) with LF line ends, as a Maildir
/// holds it and as the POP3 side stores it; a CR not before an LF is kept.
struct Lf<'a> {
    inner: &'a mut dyn Read,
    /// A CR read last, not yet known to end a line.
    cr: bool,
    out: Vec<u8>,
    pos: usize,
}

impl Read for Lf<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            self.out.clear();
            self.pos = 0;
            let mut chunk = [0u8; 16 * 1024];
            let n = self.inner.read(&mut chunk)?;
            if n == 0 {
                if !std::mem::take(&mut self.cr) {
                    return Ok(0);
                }
                self.out.push(b'\r');
                break;
            }
            for &b in &chunk[..n] {
                if std::mem::take(&mut self.cr) && b != b'\n' {
                    self.out.push(b'\r');
                }
                if b == b'\r' {
                    self.cr = true;
                } else {
                    self.out.push(b);
                }
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl ImapFolder {
    /// `folder` of the session `client`, selected (examined when nothing will be changed:
    /// `read_only`); fingerprints in `prints_path`.
    pub fn open(
        mut client: Client,
        folder: &str,
        read_only: bool,
        removal: Removal,
        prints_path: PathBuf,
    ) -> Result<ImapFolder> {
        let mailbox = client.select(folder, read_only)?;
        let mut prints = HashMap::new();
        match fs::read_to_string(&prints_path) {
            Ok(text) => {
                for l in text.lines().skip_while(|l| *l == HEADER) {
                    let mut w = l.splitn(4, ' ');
                    let (Some(v), Some(u), Some(s), Some(id)) =
                        (w.next(), w.next(), w.next(), w.next())
                    else {
                        continue;
                    };
                    if let (Ok(v), Ok(u), Ok(s)) = (v.parse(), u.parse(), s.parse()) {
                        prints.insert((v, u), (s, id.to_string()));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&prints_path, e)),
        }
        Ok(ImapFolder {
            client,
            mailbox,
            removal,
            prints_path,
            prints,
            new_prints: Vec::new(),
            scan_only: false,
        })
    }

    /// What SELECT said.
    pub fn mailbox(&self) -> Mailbox {
        self.mailbox
    }

    /// The session, for IDLE between runs.
    pub fn into_client(self) -> Client {
        self.client
    }

    /// Append the fingerprints of the bodies just read, durably.
    fn save_new(&mut self) -> Result<()> {
        if self.new_prints.is_empty() {
            return Ok(());
        }
        let path = &self.prints_path;
        let fresh = !path.exists();
        let mut text = String::new();
        if fresh {
            text.push_str(HEADER);
            text.push('\n');
        }
        for l in self.new_prints.drain(..) {
            text.push_str(&l);
            text.push('\n');
        }
        let r = (|| {
            let mut f = open_private(OpenOptions::new().append(true), path)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            if fresh {
                sync_dir(path.parent().unwrap_or(Path::new(".")))?;
            }
            Ok(())
        })();
        r.map_err(|e| io_error(path, e))
    }

    /// Forget the prints of this UIDVALIDITY's UIDs not in `keep` (gone from the server);
    /// another UIDVALIDITY's stay until [`Source::carried`] has used them.
    fn prune(&mut self, keep: &dyn Fn(u32) -> bool) -> Result<()> {
        let v = self.mailbox.uidvalidity;
        let before = self.prints.len();
        self.prints.retain(|&(pv, uid), _| pv != v || keep(uid));
        if self.prints.len() == before {
            return Ok(());
        }
        self.rewrite()
    }

    /// Write the prints as the whole file, durably (new file, fsync, rename, dir fsync).
    fn rewrite(&mut self) -> Result<()> {
        let mut lines: Vec<String> = self
            .prints
            .iter()
            .map(|((pv, uid), (size, id))| format!("{pv} {uid} {size} {id}"))
            .collect();
        lines.sort();
        let mut text = format!("{HEADER}\n");
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
        let path = &self.prints_path;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let r = (|| {
            let _ = fs::remove_file(&tmp);
            let mut f = open_private(OpenOptions::new().write(true), &tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            sync_dir(path.parent().unwrap_or(Path::new(".")))
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r.map_err(|e| io_error(path, e))
    }

    fn uids(which: &[Listed]) -> Vec<u32> {
        which.iter().map(|m| m.number).collect()
    }
}

impl Source for ImapFolder {
    fn epoch(&self) -> Option<u32> {
        Some(self.mailbox.uidvalidity)
    }

    fn list(&mut self) -> Result<Vec<Listed>> {
        let listed = self.client.list()?;
        let present: std::collections::HashSet<u32> = listed.iter().map(|l| l.uid).collect();
        // Prints of messages gone from the server (deleted here or elsewhere) go.
        self.prune(&|uid| present.contains(&uid))?;
        Ok(listed
            .into_iter()
            .map(|l| Listed {
                number: l.uid,
                id: l.uid.to_string(),
                size: l.size,
            })
            .collect())
    }

    fn headers(
        &mut self,
        which: &[Listed],
        each: &mut dyn FnMut(&Listed, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let by_uid: HashMap<u32, &Listed> = which.iter().map(|m| (m.number, m)).collect();
        // --scan's line needs three fields (RFC 3501 §6.4.5 HEADER.FIELDS); a filter and
        // --since get the whole header, as POP3's TOP gives it.
        let fields: Option<&[&str]> = self.scan_only.then_some(&["DATE", "FROM", "SUBJECT"]);
        self.client.headers(
            &Self::uids(which),
            fields,
            &mut |uid, head| match by_uid.get(&uid) {
                Some(m) => each(m, head),
                None => Ok(()),
            },
        )
    }

    fn fetch(
        &mut self,
        which: &[Listed],
        each: &mut dyn FnMut(&Listed, &mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        let by_uid: HashMap<u32, &Listed> = which.iter().map(|m| (m.number, m)).collect();
        let v = self.mailbox.uidvalidity;
        let mut prints = Vec::new();
        let r = self.client.fetch(&Self::uids(which), &mut |l, r| {
            let Some(m) = by_uid.get(&l.uid) else {
                return Ok(());
            };
            // As POP3's bound: twice the listed size (with room for a small message's
            // header), else the server lies about one of the two.
            if l.size > m.size.saturating_mul(2).max(m.size + 64 * 1024) {
                return Err(Error::new(
                    Code::Protocol,
                    format!("message {}", m.id),
                    format!(
                        "{} bytes sent, {} listed: larger than listed",
                        l.size, m.size
                    ),
                ));
            }
            let mut lf = Lf {
                inner: r,
                cr: false,
                out: Vec::new(),
                pos: 0,
            };
            let mut sniff = Sniff {
                inner: &mut lf,
                head: Vec::new(),
                done: false,
            };
            each(m, &mut sniff)?;
            if let Some(id) = message_id(&sniff.head) {
                prints.push(format!("{v} {} {} {id}", l.uid, m.size));
            }
            Ok(())
        });
        for p in &prints {
            let mut w = p.splitn(4, ' ');
            if let (Some(Ok(pv)), Some(Ok(u)), Some(Ok(s)), Some(id)) = (
                w.next().map(str::parse),
                w.next().map(str::parse),
                w.next().map(str::parse),
                w.next(),
            ) {
                self.prints.insert((pv, u), (s, id.to_string()));
            }
        }
        self.new_prints.extend(prints);
        self.save_new()?;
        r
    }

    fn delete(&mut self, which: &[Listed]) -> Result<()> {
        let uids = Self::uids(which);
        match &self.removal {
            Removal::Expunge => self.client.delete(&uids),
            Removal::MoveTo(f) => {
                let f = f.clone();
                self.client.move_to(&uids, &f)
            }
        }
    }

    fn carried(
        &mut self,
        listed: &[Listed],
        old_epoch: u32,
        seen: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>> {
        // The (Message-ID, size) of what is durable here, counted (a list may hold copies).
        let mut known: HashMap<(String, u64), usize> = HashMap::new();
        for ((pv, uid), (size, id)) in &self.prints {
            if *pv == old_epoch && seen(&uid.to_string()) {
                *known.entry((id.clone(), *size)).or_default() += 1;
            }
        }
        if known.is_empty() || listed.is_empty() {
            return Ok(Vec::new());
        }
        let sizes: HashMap<u32, u64> = listed.iter().map(|m| (m.number, m.size)).collect();
        let mut matched: Vec<(u32, u64, String)> = Vec::new();
        self.client.headers(
            &Self::uids(listed),
            Some(&["MESSAGE-ID"]),
            &mut |uid, head| {
                let (Some(id), Some(&size)) = (message_id(head), sizes.get(&uid)) else {
                    return Ok(());
                };
                if let Some(n) = known.get_mut(&(id.clone(), size))
                    && *n > 0
                {
                    *n -= 1;
                    matched.push((uid, size, id));
                }
                Ok(())
            },
        )?;
        // Their fingerprints move to the new UIDs, so a later change finds them again; the
        // old UIDVALIDITY's go.
        let v = self.mailbox.uidvalidity;
        for (uid, size, id) in &matched {
            self.prints.insert((v, *uid), (*size, id.clone()));
        }
        self.prints.retain(|&(pv, _), _| pv == v);
        self.rewrite()?;
        Ok(matched.iter().map(|(uid, _, _)| uid.to_string()).collect())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.client.logout();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out `chunk` bytes at a time.
    struct Drip<'a>(&'a [u8], usize);

    impl Read for Drip<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn crlf_becomes_lf_across_reads_and_a_lone_cr_stays() {
        let input = b"Subject: a\r\n\r\nline\rwith CR\r\nend\r";
        for chunk in [1, 2, 3, 5, 100] {
            let mut d = Drip(input, chunk);
            let mut lf = Lf {
                inner: &mut d,
                cr: false,
                out: Vec::new(),
                pos: 0,
            };
            let mut got = Vec::new();
            lf.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"Subject: a\n\nline\rwith CR\nend\r", "chunk {chunk}");
        }
    }

    #[test]
    fn a_message_far_larger_than_listed_is_refused() {
        use crate::imap::client::{Credentials, Options};
        use crate::net::tls::Mode;
        let body = "x".repeat(70_000);
        let script = format!(
            "* OK [CAPABILITY IMAP4rev1 UIDPLUS] hi\r\na1 OK in\r\na2 OK caps\r\n\
             * 1 EXISTS\r\n* OK [UIDVALIDITY 9] v\r\na3 OK sel\r\n\
             * 1 FETCH (UID 4 RFC822.SIZE 10 BODY[] {{70000}}\r\n{body})\r\na4 OK\r\n"
        );
        let (io, _) = crate::net::conn::MemIo::new(script.into_bytes());
        let mut o = Options::new(Mode::NONE);
        o.auth = Some(Credentials {
            user: "u".into(),
            secret: "p".into(),
            method: None,
        });
        let c = Client::over(Box::new(io), "imap.test", &o).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut f = ImapFolder::open(
            c,
            "INBOX",
            false,
            Removal::Expunge,
            dir.path().join("k.imap"),
        )
        .unwrap();
        let m = Listed {
            number: 4,
            id: "4".into(),
            size: 10,
        };
        let mut called = false;
        let e = f
            .fetch(&[m], &mut |_, _| {
                called = true;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(e.code(), Code::Protocol, "{e}");
        assert!(!called);
    }

    #[test]
    fn the_message_id_of_a_header() {
        assert_eq!(
            message_id(b"From: a\nMessage-ID:\n <x@y>\n\nbody").as_deref(),
            Some("<x@y>")
        );
        assert_eq!(message_id(b"From: a\n\n"), None);
    }
}
