//! mdrop: the one privileged step between a user and the system queue, Postfix's postdrop.
//! Installed setgid to the drop group, it copies a queue entry (head and message) from
//! standard input into one new file of the maildrop, owned by the calling user; mrelay's
//! queue run picks it up from there ([`crate::store::queue::maildrop`]).
//!
//! Design: as little as a setgid program can be. No configuration is read and no
//! environment variable is used (an attacker chooses both); the only input besides
//! standard input is the maildrop directory, which must have exactly a drop directory's
//! owner, group and mode; sizes are bounded; the file is created with O_EXCL and
//! O_NOFOLLOW, fsynced, and marked complete only then. What it writes is still untrusted:
//! the pickup checks it again and records the user the kernel says wrote it.

use crate::docs::Page;
use crate::exit::Result;
use crate::run;
use crate::store::queue::maildrop::{self, SYSTEM_MAILDROP};
use clap::{CommandFactory, Parser};
use std::path::PathBuf;

/// Drop a message into the system maildrop for mrelay (setgid helper).
///
/// mdrop reads a queue entry, as mrelay(1) writes it (the head of key lines, a blank line,
/// the message), on standard input and stores it as one new file in the maildrop, where
/// the mail service's mrelay -q or --daemon picks it up. Users do not call it: mrelay runs
/// it when the queue is the system's and the user may not write it.
#[derive(Parser, Debug, Default)]
#[command(
    name = "mdrop",
    version,
    about = "drop a message into the system maildrop for mrelay (setgid helper)"
)]
pub struct Args {
    /// The maildrop directory (it must be owned by another user, belong to mdrop's
    /// effective group and have mode 1730)
    #[arg(long, value_name = "DIR", default_value = SYSTEM_MAILDROP)]
    pub maildrop: PathBuf,
}

/// The binary's entry point.
pub fn main() -> std::process::ExitCode {
    // Files of ours are created 0600 whatever the caller's umask says.
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe { libc::umask(0o077) };
    run::main("mdrop", run)
}

/// Run mdrop.
pub fn run(args: Args) -> Result<()> {
    maildrop::drop_file(&args.maildrop, &mut std::io::stdin().lock()).map(drop)
}

/// mdrop's documentation.
pub fn page() -> Page {
    Page {
        name: "mdrop",
        command: Args::command(),
        description: include_str!("description.roff"),
        sections: include_str!("sections.roff"),
    }
}
