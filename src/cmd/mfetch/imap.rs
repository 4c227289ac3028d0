//! mfetch's IMAP side: a job's login turned into the IMAP client's options, and one folder
//! opened as the fetch engine's source ([`crate::fetch::imap`]). Apart from `mod.rs` so the
//! POP3 flow reads as it was.

use super::{Args, Job};
use crate::exit::{Code, Error, Result};
use crate::fetch::Source;
use crate::fetch::imap::{self, ImapFolder, Removal};
use crate::imap::client::{Client, Credentials, Idle, Method, Options};
use crate::net::tls::{Level, Mode, Start};
use crate::pop3::client::Login;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::mpsc::Sender;
use std::time::Duration;

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

/// How long one IDLE lasts before DONE and a new IDLE: servers may drop a client idle for
/// 30 minutes (RFC 2177 §3: re-issue at least every 29 minutes).
const IDLE_FOR: Duration = Duration::from_secs(25 * 60);

/// The longest wait before watching again after the connection was lost.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// `--daemon`: watch the job's folder in IDLE (RFC 2177) on a session of its own (EXAMINE:
/// it changes nothing) and send the job's name on `tx` whenever new mail arrives, so the
/// daemon fetches at once instead of at the next poll. A lost connection (the server
/// closing during IDLE, a restart) is followed by a fetch (whatever came meanwhile) and a
/// new session after a backoff; a server without IDLE ends the thread, and the poll goes
/// on alone. The thread holds nothing durable: the process may end at any time.
pub(super) fn watch(job: &Job, tx: Sender<String>) {
    let name = job.name.clone();
    let host = job.host.clone();
    let port = job.port;
    let folder = job.folder.clone().unwrap_or_else(|| "INBOX".into());
    let opts = options(job);
    std::thread::spawn(move || {
        let mut backoff = Duration::from_secs(5);
        let mut again = false;
        loop {
            let mut session = || -> Result<()> {
                let addrs: Vec<SocketAddr> = (host.as_str(), port)
                    .to_socket_addrs()
                    .map_err(|e| Error::new(Code::TempFail, &host, e))?
                    .collect();
                let mut c = Client::connect(&addrs, &host, &opts)?;
                if !c.has("IDLE") && !c.has("IMAP4REV2") {
                    return Err(Error::new(Code::Unavailable, "IDLE", "not offered"));
                }
                c.select(&folder, true)?;
                backoff = Duration::from_secs(5);
                // Back after a loss: what came meanwhile is in the count SELECT gave, and
                // IDLE reports only what comes after it.
                if again && tx.send(name.clone()).is_err() {
                    return Ok(());
                }
                again = true;
                loop {
                    if c.idle(IDLE_FOR)? == Idle::Changed && tx.send(name.clone()).is_err() {
                        return Ok(());
                    }
                }
            };
            match session() {
                Ok(()) => return,
                Err(e) if e.code() != Code::TempFail && e.code() != Code::Protocol => return,
                Err(_) => {
                    if tx.send(name.clone()).is_err() {
                        return;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    });
}
