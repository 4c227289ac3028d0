//! One module per tool: its clap definition (`Args`), its `run`, and its hand-written man page
//! sections. `src/bin/<tool>.rs` calls `run::main(NAME, cmd::<tool>::run)`; [`pages`] lists
//! every tool for the generated docs.

use crate::docs::{self, Page};
use clap_complete::Shell;
use std::path::PathBuf;

pub mod mcompose;
pub mod mdeliver;
pub mod mdrop;
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
