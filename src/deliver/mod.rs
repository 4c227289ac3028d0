//! Local delivery: the one pipeline every delivery into a mailbox here goes through
//! (mdeliver, mreceive's built-in Maildir delivery, and next mfetch and the queue's local
//! route), so a message stored by any of them is byte for byte what mdeliver would have
//! stored, with the same durability. [`rules`] is its filtering step; [`actions`] runs the
//! rules' commands (`pipe`, `filter`, `forward`); [`command`] runs a program fed the message
//! (mreceive's delivery command, those actions); [`local`] is a local recipient's mailbox (a
//! Maildir per user, or a command per recipient: mreceive's and the queue's local route).
//!
//! The steps, in this order, each one a field of [`Pipeline`] that the caller sets:
//!
//! 1. **Loop check** ([`crate::message::trace::check_loop`]): a message that already
//!    carries our `Delivered-To:` for the recipient is refused permanently (65) before
//!    anything is written.
//! 2. **Dedupe** ([`crate::store::dedupe`]): a Message-ID delivered before drops the message
//!    (formail -D) before any rule runs a command; the cache stays locked from the check
//!    until the id is recorded after the last step, so concurrent deliveries of one message
//!    store it once.
//! 3. **Rules**: where the message goes (folders, copies, flags, a command, other
//!    addresses, nowhere), decided on the message as received before the first byte is
//!    written, up to a `filter`: its output is the message from then on, and the plan goes
//!    on with it ([`rules::Rules::next`]). A broken rules file is warned about and the
//!    message delivered as without rules (maildrop's rule).
//! 4. **Trace**: `Return-Path:` and `Delivered-To:` (RFC 5321 §4.4) go on top of each copy,
//!    less what the delivering agent's own stamp already says
//!    ([`crate::message::trace::trace_over`]); a command gets its own `Delivered-To:` always
//!    ([`crate::message::trace::trace_for_command`]), and so does a forwarded copy, so a
//!    loop through either ends.
//! 5. **Store** ([`crate::store::maildir`]): tmp/, fsync, rename, the shared (group commit)
//!    fsync of new/; done only when the message is on disk.
//!
//! Cost per message, what mreceive's throughput rests on: the header block is read where the
//! [`Buffer`] holds it (never copied), the message is streamed once per destination from the
//! buffer into its file, and there is one file fsync and one (shared) directory fsync per
//! copy: nothing more than the Maildir protocol itself.
//!
//! The pipeline never prints: what a caller may want to show as it happens (a copy stored,
//! a step done, a warning that does not fail the delivery) comes to it as an [`Event`].

pub mod actions;
pub mod command;
pub mod local;
pub mod rules;

use crate::exit::{Code, Error, Result};
use crate::message::buffer::Buffer;
use crate::message::header;
use crate::message::trace::{check_loop, trace_for_command, trace_over};
use crate::store::dedupe::{self, Cache};
use crate::store::maildir::{Batch, Delivered, Maildir};
use rules::{Facts, Planned, Rules, Source, Step};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// One delivery configuration: a Maildir and the steps to take on the way into it.
///
/// [`Pipeline::new`] gives mreceive's built-in delivery (loop check, trace, store into the
/// inbox); a caller sets the other fields for more, as mdeliver does from its flags and
/// configuration. One value serves any number of messages.
#[derive(Debug)]
pub struct Pipeline {
    /// The Maildir delivered into.
    pub maildir: PathBuf,
    /// Create missing parents of [`Pipeline::maildir`]: true for a layout the delivering agent
    /// owns (mreceive's `BASE/USER/Maildir`, `$MAILDIR`); false for a path a user names, whose
    /// missing parent is exit 73 rather than a tree of mistyped directories.
    pub create_parents: bool,
    /// Refuse a message that already went through this recipient (when the recipient is known).
    pub loop_check: bool,
    /// Put `Return-Path:` and `Delivered-To:` on top of each copy (for what is known).
    pub trace: bool,
    /// The filtering rules; [`Source::Off`] stores into [`Pipeline::folder`].
    pub rules: Source,
    /// Where a message goes when no rule says otherwise: a Maildir++ folder, `INBOX` for the
    /// Maildir itself.
    pub folder: String,
    /// Maildir flags for the stored copies (`S`...); empty stores into `new/`.
    pub flags: String,
    /// The Message-ID cache: drop a message whose id was delivered before.
    pub dedupe: Option<PathBuf>,
    /// How long a command the rules run (`pipe`, `filter`, `forward`) may take.
    pub time_limit: Duration,
    /// The size limit messages were read with, if any: a filter's output may not pass it
    /// ([`actions::filter_limit`]).
    pub max_size: Option<u64>,
    /// The sendmail command a `forward` runs (argv); empty for msubmit beside us.
    pub sendmail: Vec<String>,
}

/// What a delivery did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Every copy on disk, in the order stored.
    pub stored: Vec<Delivered>,
    /// Dropped as a duplicate: its Message-ID was delivered before, nothing was done.
    pub duplicate: bool,
}

/// What a delivery tells its caller as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// A copy is on disk.
    Stored(&'a Delivered),
    /// A step of the rules' plan is done (a store: after [`Event::Stored`]).
    Done(&'a Planned),
    /// A fault that does not fail the delivery: a broken rules file (the message is delivered
    /// as without rules), or a Message-ID not recorded after the message was stored (failing
    /// then would have the sender's MTA deliver it again).
    Warning(&'a Error),
}

impl Pipeline {
    /// Loop check, trace, and store into the inbox of the Maildir at `maildir` (created
    /// with its parents when missing); no rules, no dedupe.
    pub fn new(maildir: impl Into<PathBuf>) -> Pipeline {
        Pipeline {
            maildir: maildir.into(),
            create_parents: true,
            loop_check: true,
            trace: true,
            rules: Source::Off,
            folder: "INBOX".to_string(),
            flags: String::new(),
            dedupe: None,
            time_limit: actions::TIME_LIMIT,
            max_size: None,
            sendmail: Vec::new(),
        }
    }

    /// What [`Pipeline::deliver`] would do with `msg`, one step each, without writing
    /// anything or running any command (`mdeliver -n`): the loop check, then the rules'
    /// decision, a filter taken as giving the message back unchanged.
    pub fn plan(
        &self,
        msg: &Buffer,
        sender: Option<&str>,
        recipient: Option<&str>,
        report: &mut dyn FnMut(Event),
    ) -> Result<Vec<Planned>> {
        let (sender, recipient) = (
            sender.map(header::bare_addr),
            recipient.map(header::bare_addr),
        );
        self.check_loop(msg, recipient)?;
        let rules = self.load_rules(report);
        let facts = facts(msg, sender, recipient);
        Ok(rules.plan(&facts, &self.folder, &self.flags))
    }

    /// Deliver `msg` from `sender` to `recipient` (either unknown when `None`; the null sender
    /// is `""`) through the steps chosen. Returns once every copy is on disk (and every
    /// command the rules chose exited 0), or the first error, with its exit code: 65 for the
    /// message's own faults (a loop), 75 for anything else worth retrying. Copies stored
    /// before a failing step stay (each was reported as [`Event::Stored`]). `msg` itself is
    /// left as it is: a filter's output is a message of its own.
    pub fn deliver(
        &self,
        msg: &mut Buffer,
        sender: Option<&str>,
        recipient: Option<&str>,
        report: &mut dyn FnMut(Event),
    ) -> Result<Delivery> {
        self.deliver_in(msg, sender, recipient, None, report)
    }

    /// [`Pipeline::deliver`], the stored copies left to `batch` (when given) to be made
    /// durable by [`Batch::commit`] with the rest of it (mfetch's group commit): the copies
    /// are not delivered until then.
    pub fn deliver_in(
        &self,
        msg: &mut Buffer,
        sender: Option<&str>,
        recipient: Option<&str>,
        batch: Option<&Batch>,
        report: &mut dyn FnMut(Event),
    ) -> Result<Delivery> {
        let (sender, recipient) = (
            sender.map(header::bare_addr),
            recipient.map(header::bare_addr),
        );
        self.check_loop(msg, recipient)?;
        let rules = self.load_rules(report);
        let id = self
            .dedupe
            .as_ref()
            .and_then(|_| dedupe::message_id(header::block(msg.head())));

        let root = if self.create_parents {
            Maildir::open(&self.maildir)?
        } else {
            Maildir::open_in_existing(&self.maildir)?
        };
        // Locked from the check until the id is recorded: see crate::store::dedupe. Before
        // the rules, so that a duplicate runs no filter either.
        let mut cache = match (&self.dedupe, &id) {
            (Some(path), Some(_)) => Some(Cache::open(path)?),
            _ => None,
        };
        if let (Some(c), Some(id)) = (&cache, &id)
            && c.contains(id)
        {
            return Ok(Delivery {
                stored: Vec::new(),
                duplicate: true,
            });
        }
        let mut done = Delivery::default();
        let mut at = rules.start(&self.flags);
        // The message as a filter left it, once one has run.
        let mut filtered: Option<Buffer> = None;
        while !at.done() {
            let msg = filtered.as_mut().unwrap_or(&mut *msg);
            let steps = rules.next(&facts(msg, sender, recipient), &mut at, &self.folder);
            let output = self.run(
                &steps, msg, &root, sender, recipient, batch, &mut done, report,
            )?;
            if let Some(output) = output {
                filtered = Some(output);
            }
        }
        if let (Some(c), Some(id)) = (cache.as_mut(), &id)
            && let Err(e) = c.record(id)
        {
            report(Event::Warning(&Error::new(e.code(), "dedupe", e)));
        }
        Ok(done)
    }

    /// Take `steps` (a stretch of the plan) for `msg`; a filter's output, when the stretch
    /// ended with one.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        steps: &[Planned],
        msg: &mut Buffer,
        root: &Maildir,
        sender: Option<&str>,
        recipient: Option<&str>,
        batch: Option<&Batch>,
        done: &mut Delivery,
        report: &mut dyn FnMut(Event),
    ) -> Result<Option<Buffer>> {
        // Everything that reads the header, done while it is borrowed from the buffer.
        let (trace, command_trace) = {
            let block = header::block(msg.head());
            let to_command = steps
                .iter()
                .any(|p| matches!(p.step, Step::Pipe(_) | Step::Forward(_)));
            match self.trace {
                false => (Vec::new(), Vec::new()),
                true => (
                    trace_over(block, sender, recipient),
                    if to_command {
                        trace_for_command(block, sender, recipient)
                    } else {
                        Vec::new()
                    },
                ),
            }
        };
        let env = actions::env(sender, recipient);
        let mut output = None;
        for planned in steps {
            match &planned.step {
                Step::Store { folder, flags } => {
                    let write = |w: &mut dyn Write| {
                        w.write_all(&trace)?;
                        msg.copy_to(w)
                    };
                    // The inbox is the root already opened: no second look at its tree.
                    let stored = if folder.eq_ignore_ascii_case("inbox") {
                        root.deliver_in(flags, batch, write)?
                    } else {
                        root.folder(folder)?.deliver_in(flags, batch, write)?
                    };
                    report(Event::Stored(&stored));
                    done.stored.push(stored);
                }
                Step::Pipe(argv) => actions::pipe(argv, env, self.time_limit, |w| {
                    w.write_all(&command_trace)?;
                    msg.copy_to(w)
                })?,
                // The forwarded copy carries our Delivered-To: (Postfix's .forward does the
                // same), so a forward that comes back round is a loop, not a storm. Not our
                // Return-Path: the next MTA writes its own at its delivery.
                Step::Forward(to) => {
                    let delivered_to = match self.trace {
                        true => trace_for_command(header::block(msg.head()), None, recipient),
                        false => Vec::new(),
                    };
                    actions::forward(&self.sendmail, to, sender, env, self.time_limit, |w| {
                        w.write_all(&delivered_to)?;
                        msg.copy_to(w)
                    })?
                }
                Step::Filter(argv) => {
                    let limit = actions::filter_limit(msg.len(), self.max_size);
                    output = Some(actions::filter(argv, env, self.time_limit, limit, msg)?);
                }
                Step::Discard => {}
            }
            report(Event::Done(planned));
        }
        Ok(output)
    }

    /// The loop check on the message as received, when it is asked for and the recipient
    /// known.
    fn check_loop(&self, msg: &Buffer, recipient: Option<&str>) -> Result<()> {
        match recipient {
            Some(rcpt) if self.loop_check => check_loop(header::block(msg.head()), rcpt),
            _ => Ok(()),
        }
    }

    /// The rules, or none with a warning when they cannot be read.
    fn load_rules(&self, report: &mut dyn FnMut(Event)) -> std::borrow::Cow<'_, Rules> {
        self.rules.load().unwrap_or_else(|e| {
            let why = format!("{e}; delivering without rules");
            report(Event::Warning(&Error::new(Code::Config, "rules", why)));
            Default::default()
        })
    }
}

/// What the rules see of `msg`.
fn facts<'a>(msg: &'a Buffer, sender: Option<&'a str>, recipient: Option<&'a str>) -> Facts<'a> {
    Facts {
        header: header::block(msg.head()),
        body: rules::body_of(msg.head()),
        sender: sender.unwrap_or(""),
        recipient: recipient.unwrap_or(""),
        size: msg.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn message(text: &[u8]) -> Buffer {
        let mut msg = Buffer::new();
        msg.write_all(text).unwrap();
        msg
    }

    /// Deliver, keeping the events as text.
    fn run(
        p: &Pipeline,
        text: &[u8],
        sender: Option<&str>,
        rcpt: Option<&str>,
    ) -> (Result<Delivery>, Vec<String>) {
        let mut events = Vec::new();
        let r = p.deliver(&mut message(text), sender, rcpt, &mut |e| {
            events.push(match e {
                Event::Stored(d) => format!("stored {}", d.path.display()),
                Event::Warning(e) => format!("warning {e}"),
                Event::Done(_) => return,
            })
        });
        (r, events)
    }

    /// Every message file under `dir`, its folders' too.
    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if name == "new" || name == "cur" {
                found.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.is_dir() && name != "tmp" {
                found.extend(files(&path));
            }
        }
        found
    }

    fn plan(p: &Pipeline, text: &[u8], rcpt: Option<&str>) -> Result<Vec<String>> {
        let steps = p.plan(&message(text), Some("a@y"), rcpt, &mut |_| {})?;
        Ok(steps.iter().map(Planned::to_string).collect())
    }

    #[test]
    fn mreceives_delivery_is_loop_check_trace_and_store() {
        let dir = tempfile::tempdir().unwrap();
        // Its parents are created: the layout is the agent's own (BASE/USER/Maildir).
        let p = Pipeline::new(dir.path().join("bob/Maildir"));
        let text = b"Received: by mx\nSubject: s\n\nhi\n";
        let (r, events) = run(&p, text, Some("a@y"), Some("b@x"));
        let d = r.unwrap();
        assert!(!d.duplicate);
        assert_eq!(d.stored.len(), 1);
        assert_eq!(events, [format!("stored {}", d.stored[0].path.display())]);
        assert!(
            d.stored[0]
                .path
                .parent()
                .unwrap()
                .ends_with("bob/Maildir/new")
        );
        // The whole trace: under mreceive's Received: there is no other agent's stamp to
        // skip and no leading white space to separate.
        let mut want = crate::message::trace::trace(Some("a@y"), Some("b@x"));
        want.extend_from_slice(text);
        assert_eq!(std::fs::read(&d.stored[0].path).unwrap(), want);
        // Delivered again through an MTA: a loop, permanent, nothing more stored.
        let again = std::fs::read(&d.stored[0].path).unwrap();
        let mut looped = b"Received: by mx2\n".to_vec();
        looped.extend_from_slice(&again);
        let (r, events) = run(&p, &looped, Some("a@y"), Some("B@x"));
        assert_eq!(r.unwrap_err().code(), Code::DataErr);
        assert!(events.is_empty());
        assert_eq!(files(&p.maildir).len(), 1);
    }

    #[test]
    fn steps_left_out_are_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pipeline {
            loop_check: false,
            trace: false,
            ..Pipeline::new(dir.path().join("M"))
        };
        let text = b"Received: x\nDelivered-To: b@x\n\nhi\n";
        let d = run(&p, text, Some("a@y"), Some("b@x")).0.unwrap();
        assert_eq!(std::fs::read(&d.stored[0].path).unwrap(), text);
        // An unknown envelope: nothing to check, nothing to say.
        let p = Pipeline::new(dir.path().join("N"));
        let d = run(&p, text, None, None).0.unwrap();
        assert_eq!(std::fs::read(&d.stored[0].path).unwrap(), text);
    }

    #[test]
    fn plans_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let rules = "header Subject contains ann copy Ann\n\
                     size > 1k flags S folder Big\n\
                     sender is a@y discard\n";
        let p = Pipeline {
            rules: Source::Parsed(rules::Rules::parse(rules, "t").unwrap()),
            folder: "Other".into(),
            flags: "F".into(),
            ..Pipeline::new(dir.path().join("M"))
        };
        assert_eq!(
            plan(&p, b"Subject: [ANN]\n\n", None).unwrap(),
            ["store Ann flags F", "discard"]
        );
        let big = [b"Subject: x\n\n".as_slice(), &[b'x'; 2000]].concat();
        assert_eq!(plan(&p, &big, None).unwrap(), ["store Big flags S"]);
        // The loop check comes first; nothing was created by any of it.
        let e = plan(&p, b"Received: x\nDelivered-To: b@x\n\n", Some("<b@x>")).unwrap_err();
        assert_eq!(e.code(), Code::DataErr);
        assert!(!p.maildir.exists());
    }

    #[test]
    fn rules_choose_folders_copies_flags_and_discard() {
        let dir = tempfile::tempdir().unwrap();
        let rules = "header List-Id exists copy Lists.all\n\
                     header List-Id contains rust flags S folder Lists.rust\n\
                     sender is spam@x discard\n";
        let p = Pipeline {
            rules: Source::Parsed(rules::Rules::parse(rules, "t").unwrap()),
            ..Pipeline::new(dir.path().join("M"))
        };
        let text = b"List-Id: <rust.lists.x>\n\nhi\n";
        let (r, events) = run(&p, text, Some("a@y"), Some("b@x"));
        let d = r.unwrap();
        let stored: Vec<&Path> = d.stored.iter().map(|s| s.path.as_path()).collect();
        assert_eq!(stored.len(), 2);
        assert!(stored[0].starts_with(p.maildir.join(".Lists.all/new")));
        assert!(stored[1].starts_with(p.maildir.join(".Lists.rust/cur")));
        assert!(stored[1].to_str().unwrap().ends_with(":2,S"));
        assert_eq!(events.len(), 2);
        assert_eq!(files(&p.maildir).len(), 2);
        assert!(p.maildir.join(".Lists.rust/maildirfolder").exists());
        for s in stored {
            let got = std::fs::read(s).unwrap();
            assert_eq!(
                got,
                [b"Return-Path: <a@y>\nDelivered-To: b@x\n", &text[..]].concat()
            );
        }
        // Discarded: delivered nowhere, successfully.
        let d = run(&p, b"Subject: s\n\n", Some("spam@x"), None).0.unwrap();
        assert_eq!(d, Delivery::default());
        assert_eq!(files(&p.maildir).len(), 2);
    }

    #[test]
    fn a_broken_rules_file_is_a_warning_and_the_inbox_gets_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pipeline {
            rules: Source::Named(dir.path().join("missing")),
            ..Pipeline::new(dir.path().join("M"))
        };
        let (r, events) = run(&p, b"Subject: s\n\n", None, None);
        let d = r.unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events[0].starts_with("warning rules: "), "{events:?}");
        assert!(
            events[0].ends_with("; delivering without rules"),
            "{events:?}"
        );
        assert!(d.stored[0].path.starts_with(p.maildir.join("new")));
        // The default file missing is no rules, and nothing to warn about.
        let p = Pipeline {
            rules: Source::Default(dir.path().join("missing")),
            ..p
        };
        assert_eq!(run(&p, b"Subject: s\n\n", None, None).1.len(), 1);
    }

    #[test]
    fn dedupe_drops_a_message_id_seen_before_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pipeline {
            dedupe: Some(dir.path().join("cache")),
            ..Pipeline::new(dir.path().join("M"))
        };
        let text = b"Message-ID: <1@x>\n\nhi\n";
        assert!(!run(&p, text, None, None).0.unwrap().duplicate);
        let (r, events) = run(&p, text, None, None);
        let d = r.unwrap();
        assert!(d.duplicate && d.stored.is_empty() && events.is_empty());
        // Without an id a message is never a duplicate.
        for _ in 0..2 {
            assert_eq!(
                run(&p, b"Subject: s\n\n", None, None)
                    .0
                    .unwrap()
                    .stored
                    .len(),
                1
            );
        }
        assert_eq!(files(&p.maildir).len(), 3);
        // A delivery that failed did not record its id: the retry is no duplicate.
        let failing = Pipeline {
            rules: Source::Parsed(rules::Rules::parse("all pipe false", "t").unwrap()),
            dedupe: p.dedupe.clone(),
            ..Pipeline::new(&p.maildir)
        };
        let other = b"Message-ID: <2@x>\n\nhi\n";
        assert_eq!(
            run(&failing, other, None, None).0.unwrap_err().code(),
            Code::TempFail
        );
        assert!(!run(&p, other, None, None).0.unwrap().duplicate);
    }

    #[test]
    fn a_command_gets_the_message_with_its_own_delivered_to() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "cat > '{}'; echo \"$SENDER $RECIPIENT\" >> '{}'",
            out.display(),
            out.display()
        );
        let argv = ["sh".to_string(), "-c".to_string(), script];
        let rules = format!("all pipe {}", quote_all(&argv));
        let p = Pipeline {
            rules: Source::Parsed(rules::Rules::parse(&rules, "t").unwrap()),
            ..Pipeline::new(dir.path().join("M"))
        };
        // Stamped by the agent that ran us: the stored copy would not repeat it, the
        // command gets a second Delivered-To: (a loop through it ends).
        let text = b"Return-Path: <a@y>\nDelivered-To: b@x\nSubject: s\n\nhi\n";
        let d = run(&p, text, Some("a@y"), Some("b@x")).0.unwrap();
        assert!(d.stored.is_empty());
        let mut want = b"Delivered-To: b@x\n".to_vec();
        want.extend_from_slice(text);
        want.extend_from_slice(b"a@y b@x\n");
        assert_eq!(std::fs::read(&out).unwrap(), want);
    }

    #[test]
    fn a_filter_replaces_the_message_for_the_steps_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let argv = ["sh", "-c", "printf 'X-Spam: yes\\n'; cat"].map(String::from);
        let rules = format!(
            "all copy Before filter {}\nheader X-Spam is yes folder Junk\n",
            quote_all(&argv)
        );
        let p = Pipeline {
            rules: Source::Parsed(rules::Rules::parse(&rules, "t").unwrap()),
            ..Pipeline::new(dir.path().join("M"))
        };
        let text = b"Subject: s\n\nhi\n";
        let mut msg = message(text);
        let mut done = Vec::new();
        let d = p
            .deliver(&mut msg, Some("a@y"), Some("b@x"), &mut |e| {
                if let Event::Done(step) = e {
                    done.push(format!("{} {}", step.rule.as_deref().unwrap_or("-"), step));
                }
            })
            .unwrap();
        assert_eq!(
            done,
            [
                "t:1 store Before".to_string(),
                format!("t:1 {}", Step::Filter(argv.to_vec())),
                "t:2 store Junk".to_string()
            ]
        );
        let trace = b"Return-Path: <a@y>\nDelivered-To: b@x\n".as_slice();
        let read = |i: usize| std::fs::read(&d.stored[i].path).unwrap();
        assert!(d.stored[0].path.starts_with(p.maildir.join(".Before")));
        assert_eq!(read(0), [trace, text].concat());
        assert!(d.stored[1].path.starts_with(p.maildir.join(".Junk")));
        assert_eq!(read(1), [trace, b"X-Spam: yes\n", text].concat());
        // The caller's message is as it was (mreceive delivers it to the next recipient).
        let mut again = Vec::new();
        msg.copy_to(&mut again).unwrap();
        assert_eq!(again, text);
    }

    #[test]
    fn a_forward_carries_our_delivered_to_so_a_loop_ends() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!("printf '%s ' \"$@\" >'{0}'; cat >>'{0}'", out.display());
        let p = Pipeline {
            rules: Source::Parsed(rules::Rules::parse("all forward c@z.test", "t").unwrap()),
            sendmail: vec!["sh".into(), "-c".into(), script, "sendmail".into()],
            ..Pipeline::new(dir.path().join("M"))
        };
        let text = b"Subject: s\n\nhi\n";
        let d = run(&p, text, Some("a@y"), Some("b@x")).0.unwrap();
        assert!(d.stored.is_empty());
        let sent = std::fs::read(&out).unwrap();
        assert_eq!(
            sent,
            [b"-i -fa@y -- c@z.test Delivered-To: b@x\n".as_slice(), text].concat()
        );
        // Come back round through an MTA, it is a loop.
        let forwarded = sent.strip_prefix(b"-i -fa@y -- c@z.test ").unwrap();
        let back = [b"Received: by mx\n".as_slice(), forwarded].concat();
        let e = run(&p, &back, Some("a@y"), Some("b@x")).0.unwrap_err();
        assert_eq!(e.code(), Code::DataErr);
    }

    /// Words as a rules file writes them.
    fn quote_all(argv: &[String]) -> String {
        argv.iter()
            .map(|w| format!("'{}'", w.replace('\'', "'\"'\"'")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_maildir_a_user_names_gets_no_parents() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pipeline {
            create_parents: false,
            ..Pipeline::new(dir.path().join("typo/Maildir"))
        };
        let e = run(&p, b"Subject: s\n\n", None, None).0.unwrap_err();
        assert_eq!(e.code(), Code::CantCreat);
        assert!(!dir.path().join("typo").exists());
        let p = Pipeline {
            maildir: dir.path().join("Maildir"),
            ..p
        };
        assert_eq!(
            run(&p, b"Subject: s\n\n", None, None)
                .0
                .unwrap()
                .stored
                .len(),
            1
        );
    }
}
