//! A local recipient's mailbox: `BASE/<user>/Maildir` through the pipeline, or a delivery
//! command run for the recipient with its `${user}` and `${recipient}` replaced. mreceive
//! delivers its local domains so, and the queue's local route (mrelay) the same way, with
//! the settings the entry was queued with.

use crate::exit::{Code, Error, Result};
use crate::message::buffer::Buffer;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a local recipient's mail goes.
#[derive(Clone, Copy, Debug)]
pub enum Mailbox<'a> {
    /// Built in: `BASE/<user>/Maildir`, through [`super::Pipeline`].
    Maildirs(&'a Path),
    /// Run `argv` with the message on stdin, its [`PLACEHOLDERS`] replaced; with a base,
    /// `MAILDIR` is set to `BASE/<user>/Maildir` for it.
    Command {
        /// The program and its arguments (never through a shell).
        argv: &'a [String],
        /// The Maildir base to tell the command about.
        base: Option<&'a Path>,
    },
}

/// What a delivery command's words may say of each recipient, with Postfix pipe(8)'s names:
/// the user (a safe path component, see [`crate::smtp::policy::is_user_name`]) and the
/// address. Either one lets the command choose each recipient's mailbox itself
/// (`dovecot-lda -d ${user}`, `mdeliver /home/${user}/Maildir`).
pub const PLACEHOLDERS: [&str; 2] = ["${user}", "${recipient}"];

/// Check the placeholders in a delivery command's words: true when it names the recipient;
/// an unknown `${name}` is an error, since a typo would reach the command as it is and send
/// everyone's mail to one literal path.
pub fn names_recipient(argv: &[String]) -> std::result::Result<bool, String> {
    let mut named = false;
    for word in argv {
        let mut rest = word.as_str();
        while let Some(at) = rest.find("${") {
            let tail = &rest[at..];
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unterminated ${{ in {word:?}"))?;
            let name = &tail[..=end];
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "unknown {name} (known: {})",
                    PLACEHOLDERS.join(", ")
                ));
            }
            named = true;
            rest = &tail[end + 1..];
        }
    }
    Ok(named)
}

/// `argv` with the placeholders replaced for one recipient. The address goes in last, so a
/// local part such as `bob+${user}` (`$`, `{` and `}` are atext) is not replaced again; user
/// names are `[A-Za-z0-9._-]`, and neither value holds a `/` (the policy refuses it).
pub fn expand(argv: &[String], user: &str, address: &str) -> Vec<String> {
    argv.iter()
        .map(|w| w.replace("${user}", user).replace("${recipient}", address))
        .collect()
}

/// `BASE/<user>/Maildir`; the user name was checked to be one safe path component.
pub fn maildir_of(base: &Path, user: &str) -> PathBuf {
    base.join(user).join("Maildir")
}

/// Deliver `msg` from `sender` to the local recipient `address`, user `user`, into `mailbox`;
/// a command gets at most `limit`. Done only once the message is durable (the Maildir
/// protocol) or the command exited 0; a command's 75, its failing to start or a signal is
/// temporary, any other exit permanent ([`super::command::deliver`]).
pub fn deliver(
    mailbox: Mailbox<'_>,
    sender: &str,
    address: &str,
    user: &str,
    msg: &mut Buffer,
    limit: Duration,
) -> Result<()> {
    match mailbox {
        Mailbox::Maildirs(base) => super::Pipeline::new(maildir_of(base, user))
            .deliver(msg, Some(sender), Some(address), &mut |_| {})
            .map(drop),
        Mailbox::Command { argv, base } => {
            let maildir = base.map(|b| maildir_of(b, user));
            let vars = [
                ("SENDER", Some(sender)),
                ("RECIPIENT", Some(address)),
                ("USER", Some(user)),
                ("MAILDIR", maildir.as_deref().and_then(Path::to_str)),
            ];
            if limit.is_zero() {
                return Err(Error::new(
                    Code::TempFail,
                    "deliver",
                    "no time left for this recipient",
                ));
            }
            super::command::deliver(&expand(argv, user, address), &vars, limit, msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let argv = |ws: &[&str]| ws.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(names_recipient(&argv(&["mdeliver", "$HOME/x"])), Ok(false));
        assert_eq!(names_recipient(&argv(&["lda", "-d", "${user}"])), Ok(true));
        assert_eq!(
            names_recipient(&argv(&["x", "a${recipient}b${user}"])),
            Ok(true)
        );
        assert!(names_recipient(&argv(&["x", "${USER}"])).is_err());
        assert!(names_recipient(&argv(&["x", "${user"])).is_err());
        assert_eq!(
            expand(
                &argv(&["/m/${user}/Maildir", "-a", "${recipient}"]),
                "bob",
                "bob+${user}@x.test"
            ),
            argv(&["/m/bob/Maildir", "-a", "bob+${user}@x.test"])
        );
    }
}
