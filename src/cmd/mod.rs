//! One module per tool: its clap definition (`Args`), its `run`, and its hand-written man page
//! sections. `src/bin/<tool>.rs` calls `run::main(NAME, cmd::<tool>::run)`; [`pages`] lists
//! every tool for the generated docs.

use crate::docs::{self, Page};
use clap_complete::Shell;
use std::path::PathBuf;

pub mod limits;
pub mod maccess;
pub mod mcompose;
pub mod mdeliver;
pub mod mdrop;
pub mod mfetch;
pub mod mreceive;
pub mod mrelay;
pub mod msubmit;

/// Every tool's documentation page, in install order.
pub fn pages() -> Vec<Page> {
    vec![
        mcompose::page(),
        msubmit::page(),
        mrelay::page(),
        mdrop::page(),
        mreceive::page(),
        mdeliver::page(),
        maccess::page(),
        mfetch::page(),
    ]
}

/// Every generated file, as (path relative to the project root, contents).
pub fn generated() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for page in pages() {
        files.push((
            PathBuf::from(format!("man/{}.1", page.name)),
            docs::man(&page),
        ));
        for (shell, file) in [
            (Shell::Bash, format!("completions/{0}/{0}.bash", page.name)),
            (Shell::Zsh, format!("completions/{0}/_{0}", page.name)),
            (Shell::Fish, format!("completions/{0}/{0}.fish", page.name)),
        ] {
            files.push((PathBuf::from(file), docs::completion(&page, shell)));
        }
    }
    files
}

/// Append `line` to a tool's log file at `path` (mdeliver's and msubmit's `--log`) with one
/// write (O_APPEND keeps the lines of concurrent writers whole), creating it 0600 whatever
/// the umask (it names who writes to whom); a failure is a warning, never the tool's.
pub(crate) fn append_log(path: &std::path::Path, line: &str) {
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true);
    let written = crate::store::maildir::open_private(&opts, path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    if let Err(e) = written {
        crate::run::warn(format_args!(
            "log {}: {}",
            path.display(),
            crate::exit::describe_io(&e)
        ));
    }
}
