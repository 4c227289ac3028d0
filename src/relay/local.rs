//! The local route: recipients delivered on this host through the delivery pipeline
//! ([`crate::deliver::local`]), as mreceive delivers its own domains: `BASE/USER/Maildir`
//! or a command per recipient, with the settings the entry was queued with (or the
//! `route DOMAIN local DIR` / `pipe COMMAND` line that chose it).
//!
//! The user is the recipient's local part as mreceive's policy reads it (before any
//! `+extension`, lower case, a safe directory name); one that cannot be a user fails for
//! good (5.1.1), as mreceive would refuse it at RCPT.

use super::Outcome;
use crate::deliver::local::{self, Mailbox};
use crate::envelope::Envelope;
use crate::exit::Code;
use crate::message::buffer::Buffer;
use crate::smtp::policy::Policy;
use crate::store::queue::{Local, Verdict};
use std::time::{Duration, Instant};

/// How long the delivery commands of one message may run, all recipients together.
pub const TIME_LIMIT: Duration = Duration::from_secs(300);

/// Deliver `msg` to the recipients `rcpts` (indexes into `env`) through `route`; one outcome
/// per recipient of `rcpts`, in order.
pub fn send(route: &Local, env: &Envelope, rcpts: &[usize], msg: &mut Buffer) -> Vec<Outcome> {
    let deadline = Instant::now() + TIME_LIMIT;
    let argv: Vec<String>;
    let (mailbox, relay) = match route {
        Local::Maildirs(base) => (Mailbox::Maildirs(base), format!("local:{}", base.display())),
        Local::Command(line) | Local::CommandMaildirs(line, _) => {
            argv = match crate::config::words(line) {
                Ok(argv) if !argv.is_empty() => argv,
                _ => {
                    let why = format!("local route: cannot read the command {line:?}");
                    return vec![Outcome::deferred(&why, "4.3.5", "local"); rcpts.len()];
                }
            };
            let relay = format!("pipe:{}", argv[0]);
            (
                Mailbox::Command {
                    argv: &argv,
                    base: match route {
                        Local::CommandMaildirs(_, base) => Some(base),
                        _ => None,
                    },
                },
                relay,
            )
        }
    };
    rcpts
        .iter()
        .map(|&i| {
            let addr = &env.rcpts[i].addr;
            let domain = addr.rsplit_once('@').map_or("", |(_, d)| d);
            let user = match Policy::new(&[domain.to_string()], None).check(addr) {
                Ok(l) => l.user,
                Err(reply) => {
                    let why = format!("{} (local delivery)", reply.text());
                    return Outcome::failed(&why, "5.1.1", &relay, None);
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match local::deliver(mailbox, &env.from, addr, &user, msg, left) {
                Ok(()) => Outcome {
                    verdict: Verdict::Delivered,
                    reply: format!("delivered to {user}"),
                    status: "2.0.0".into(),
                    relay: relay.clone(),
                    remote_mta: None,
                    smtp: false,
                    success: Some(crate::message::dsn::Action::Delivered),
                },
                Err(e) if e.code() == Code::TempFail => {
                    Outcome::deferred(&e.to_string(), "4.3.0", &relay)
                }
                // A loop (the message already went through this mailbox) or a refusal.
                Err(e) if e.code() == Code::DataErr => {
                    Outcome::failed(&e.to_string(), "5.4.6", &relay, None)
                }
                Err(e) => Outcome::failed(&e.to_string(), "5.3.0", &relay, None),
            }
        })
        .collect()
}
