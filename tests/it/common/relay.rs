//! mrelay's test harness: a relay with its own configuration and queue in a temporary
//! directory, shared by tests/it/mrelay.rs and tests/it/mrelay_interop.rs.

use super::{code, files, run, stderr, tool};
use std::path::PathBuf;
use std::process::{Command, Output};

/// A relay with its own configuration and queue in a temporary directory.
pub struct Relay {
    pub t: tempfile::TempDir,
}

impl Relay {
    pub fn new(config: &str) -> Relay {
        let r = Relay {
            t: tempfile::tempdir().unwrap(),
        };
        r.config(config);
        r
    }

    pub fn config(&self, text: &str) {
        std::fs::write(self.t.path().join("config"), text).unwrap();
    }

    pub fn queue(&self) -> PathBuf {
        self.t.path().join("queue")
    }

    pub fn cmd(&self) -> Command {
        let mut c = tool(PathBuf::from(env!("CARGO_BIN_EXE_mrelay")), self.t.path());
        c.arg("-C")
            .arg(self.t.path().join("config"))
            .arg("--queue-dir")
            .arg(self.queue())
            .args(["--hostname", "relay.test"]);
        c
    }

    /// Run mrelay with `args` and `stdin`.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        run(self.cmd().args(args), stdin)
    }

    /// Run it and expect exit 0.
    pub fn ok(&self, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run(args, stdin);
        assert_eq!(code(&out), 0, "mrelay {args:?}: {}", stderr(&out));
        stderr(&out)
    }

    /// The ids of the entries waiting in the queue.
    pub fn waiting(&self) -> Vec<String> {
        files(&self.queue().join("new"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    pub fn list(&self) -> String {
        let out = self.run(&["--list"], b"");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A directory for local routes' Maildirs.
    pub fn maildirs(&self) -> PathBuf {
        self.t.path().join("mail")
    }

    /// Every recipient of every entry, from `--list --json`: `ADDRESS STATUS ATTEMPTS`, one a
    /// line, in queue order; Python's json parser reads the listing, so it must be valid.
    pub fn states(&self) -> String {
        let out = self.run(&["--list", "--json"], b"");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let script = r#"
import json, sys
for e in json.load(sys.stdin):
    for r in e["recipients"]:
        print(r["address"], r["status"], r["attempts"])
"#;
        let mut py = Command::new("python3");
        py.args(["-c", script]);
        let parsed = run(&mut py, &out.stdout);
        assert!(parsed.status.success(), "{}", stderr(&parsed));
        String::from_utf8_lossy(&parsed.stdout).into_owned()
    }
}
