//! mfetch's IMAP side: a job's login turned into the IMAP client's options, and one folder
//! opened as the fetch engine's source ([`crate::fetch::imap`]). Apart from `mod.rs` so the
//! POP3 flow reads as it was.

use super::{Args, Job};
use crate::exit::Result;
use crate::fetch::Source;
use crate::fetch::imap::{self, ImapFolder, Removal};
use crate::imap::client::{Client, Credentials, Method, Options};
use crate::net::tls::{Level, Mode, Start};
use crate::pop3::client::Login;
use std::net::SocketAddr;
use std::path::Path;

/// RFC 8314 §3.2 (993) with implicit TLS, RFC 9051 (143) otherwise.
pub(super) fn default_port(mode: Mode) -> u16 {
    if mode.start == Start::Implicit && mode.level != Level::None {
        993
    } else {
        143
    }
}

/// The IMAP client's options for a job's server, TLS and login.
fn options(job: &Job) -> Options {
    let p = &job.opts;
    let mut o = Options::new(p.tls);
    o.trust = p.trust.clone();
    o.timeout = p.timeout;
    o.auth = Some(Credentials {
        user: p.auth.user.clone(),
        secret: p.auth.secret.clone(),
        // USER/PASS is POP3's plain login: IMAP's is LOGIN.
        method: p.auth.login.map(|l| match l {
            Login::UserPass | Login::Login => Method::Login,
            Login::Plain => Method::Plain,
            Login::XOAuth2 => Method::XOAuth2,
            Login::OAuthBearer => Method::OAuthBearer,
        }),
    });
    o
}

/// One job per folder: `--folder`s, else the account's `folders`, else INBOX. Each has
/// its own state (the account's name and the folder's), so the UIDs of two folders never
/// meet.
pub(super) fn per_folder(job: Job, flags: &[String], account: &[String]) -> Vec<Job> {
    let folders: Vec<String> = match (flags, account) {
        ([], []) => vec!["INBOX".to_string()],
        ([], a) => a.to_vec(),
        (f, _) => f.to_vec(),
    };
    folders
        .into_iter()
        .map(|folder| Job {
            name: format!("{}/{folder}", job.name),
            host: job.host.clone(),
            port: job.port,
            opts: job.opts.clone(),
            keep: job.keep,
            folder: Some(folder),
        })
        .collect()
}

/// The job's folder, selected, as the engine's source.
pub(super) fn source(
    args: &Args,
    job: &Job,
    folder: &str,
    addrs: &[SocketAddr],
    dir: &Path,
) -> Result<Box<dyn Source>> {
    let client = Client::connect(addrs, &job.host, &options(job))?;
    let removal = match &args.move_to {
        Some(f) => Removal::MoveTo(f.clone()),
        None => Removal::Expunge,
    };
    let mut f = ImapFolder::open(
        client,
        folder,
        args.scan,
        removal,
        imap::prints_path(dir, &job.name),
    )?;
    f.scan_only = args.scan;
    Ok(Box::new(f))
}
