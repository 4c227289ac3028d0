//! The flags a listening server shares (mreceive and maccess): the per-client limits of
//! Postfix's anvil, the listen queue and the stress mode, one clap group flattened into
//! each tool's flags, so both servers are set up with the same words and
//! [`crate::net::listen::Limits`] is built in one place.

use crate::net::listen::{Limits, Network};
use std::time::Duration;

/// `--client-connection-count-limit` and the rest (see each flag's text).
#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    /// With --listen: at most N sessions at once from one client address (more are refused,
    /// 421 4.7.0 in SMTP, -ERR [SYS/TEMP] in POP3; 0: no limit)
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub client_connection_count_limit: usize,

    /// With --listen: at most N connections a minute from one client address (more are
    /// refused as above; 0: no limit)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub client_connection_rate_limit: usize,

    /// With --listen: client networks the two limits above do not apply to (repeatable, or
    /// comma-separated; ADDRESS or ADDRESS/BITS; none by default, loopback included)
    #[arg(long, value_name = "NETWORK", value_delimiter = ',')]
    pub client_limit_exceptions: Vec<Network>,

    /// With --listen: the listen queue's length [default: the system's limit,
    /// /proc/sys/net/core/somaxconn]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub backlog: Option<u32>,

    /// With --listen, while 90% of --max-sessions are taken: give up on a client that sends
    /// nothing (in SMTP: or sends no message) for SECONDS
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub stress_timeout: u64,
}

/// The flags' own defaults, for a tool's `Default` (its tests build flags without clap).
impl Default for Flags {
    fn default() -> Flags {
        Flags {
            client_connection_count_limit: 50,
            client_connection_rate_limit: 0,
            client_limit_exceptions: Vec::new(),
            backlog: None,
            stress_timeout: 10,
        }
    }
}

impl Flags {
    /// The accept loop's limits, with the tool's session limit and read timeout; the stress
    /// timeout never longer than the usual one.
    pub fn limits(&self, max_sessions: usize, timeout: Duration) -> Limits {
        Limits {
            max_sessions,
            per_client: self.client_connection_count_limit,
            rate: self.client_connection_rate_limit,
            exempt: self.client_limit_exceptions.clone(),
            backlog: self.backlog,
            timeout,
            stress_timeout: Duration::from_secs(self.stress_timeout).min(timeout),
        }
    }
}
