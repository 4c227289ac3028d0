//! Man pages and shell completions, generated from the clap definitions.
//!
//! Flags are defined once, in each tool's `Args`; the OPTIONS of its man page and its bash,
//! zsh and fish completions are rendered from that definition (clap_mangen, clap_complete),
//! and the hand-written parts (more DESCRIPTION, EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES,
//! SEE ALSO) sit beside the definition in the tool's module as roff. `tests/docs.rs` fails when
//! the committed files under `man/` and `completions/` differ from what this renders;
//! `make docs` rewrites them.

use clap_complete::Shell;
use std::path::PathBuf;

/// What a tool contributes to its documentation.
pub struct Page {
    /// The tool's name, as installed.
    pub name: &'static str,
    /// Its clap definition.
    pub command: clap::Command,
    /// roff appended to DESCRIPTION, after clap's long about text.
    pub description: &'static str,
    /// roff for the sections after OPTIONS, each starting with `.SH`.
    pub sections: &'static str,
}

/// The man page of `page`, section 1.
pub fn man(page: &Page) -> String {
    let cmd = page.command.clone().name(page.name);
    let man = clap_mangen::Man::new(cmd)
        .section("1")
        .source(format!("mailpipe {}", env!("CARGO_PKG_VERSION")))
        .manual("mailpipe manual");
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    out.extend_from_slice(page.description.trim_start().as_bytes());
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    let _ = man.render_options_section(&mut out);
    out.extend_from_slice(page.sections.trim_start().as_bytes());
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The completion script of `page` for `shell`.
pub fn completion(page: &Page, shell: Shell) -> String {
    let mut cmd = page.command.clone().name(page.name);
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, page.name, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Every generated file, as (path relative to the project root, contents).
pub fn generated() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for page in crate::cmd::pages() {
        files.push((PathBuf::from(format!("man/{}.1", page.name)), man(&page)));
        for (shell, file) in [
            (Shell::Bash, format!("completions/{0}/{0}.bash", page.name)),
            (Shell::Zsh, format!("completions/{0}/_{0}", page.name)),
            (Shell::Fish, format!("completions/{0}/{0}.fish", page.name)),
        ] {
            files.push((PathBuf::from(file), completion(&page, shell)));
        }
    }
    files
}
