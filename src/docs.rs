//! Man pages and shell completions, generated from the clap definitions.
//!
//! Flags are defined once, in each tool's `Args`; the OPTIONS of its man page and its bash,
//! zsh and fish completions are rendered from that definition (clap_mangen, clap_complete),
//! and the hand-written parts (more DESCRIPTION, EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES,
//! SEE ALSO) sit beside the definition in the tool's module as roff. `tests/it/docs.rs` fails when
//! the committed files under `man/` and `completions/` differ from what this renders;
//! `make docs` rewrites them.

use clap_complete::Shell;

/// The version the man pages describe, for their `.TH` line. Cargo.toml's version, written
/// again here so that it cannot change without [`DATE`]: tests/it/docs.rs fails when the two
/// versions differ.
pub const VERSION: &str = "0.1.0";

/// The date of [`VERSION`], the `.TH` date of every page, generated or hand-written
/// (YYYY-MM-DD, which mandoc and man-db read). Never the build date: the generated pages
/// would then change every day and tests/it/docs.rs would find them stale.
pub const DATE: &str = "2026-12-01";

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
        .date(DATE)
        .source(format!("mailpipe {VERSION}"))
        .manual("mailpipe manual");
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    out.extend_from_slice(synopsis(&page.command.clone().name(page.name)).as_bytes());
    let _ = man.render_description_section(&mut out);
    out.extend_from_slice(page.description.trim_start().as_bytes());
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    let _ = man.render_options_section(&mut out);
    // clap_mangen sets an option's possible values apart from its help with `.br`, an empty
    // line and `.br`: an empty line is `.sp`, and mandoc warns of a `.br` on either side
    // of it (skipping them anyway). `.sp` alone is what it means.
    let out = String::from_utf8_lossy(&out).replace("\n.br\n\n.br\n", "\n.sp\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(page.sections.trim_start().as_bytes());
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The SYNOPSIS section: each visible option with its value (`-f SENDER`, where
/// clap_mangen's shows a bare `-f`), `...` after one that may be repeated, then the operands.
/// Options come in the order of clap_mangen's OPTIONS section.
fn synopsis(cmd: &clap::Command) -> String {
    let mut cmd = cmd.clone();
    cmd.build(); // adds --help and --version
    let mut opts: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
        .collect();
    opts.sort_by_key(|a| option_sort_key(a));
    let mut line = format!("\\fB{}\\fR", roff_escape(cmd.get_name()));
    for a in opts.into_iter().chain(cmd.get_positionals()) {
        let names: Vec<String> = match (a.get_short(), a.get_long()) {
            (Some(s), Some(l)) => vec![format!("-{s}"), format!("--{l}")],
            (Some(s), None) => vec![format!("-{s}")],
            (None, Some(l)) => vec![format!("--{l}")],
            (None, None) => vec![],
        };
        let mut item = names
            .iter()
            .map(|n| format!("\\fB{}\\fR", roff_escape(n)))
            .collect::<Vec<_>>()
            .join("|");
        let takes = a.get_num_args().is_some_and(|r| r.takes_values());
        if takes || a.is_positional() {
            let value = match a.get_value_names() {
                Some(v) => v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
                None => a.get_id().as_str().to_uppercase(),
            };
            let value = format!("\\fI{}\\fR", roff_escape(&value));
            let optional = a.get_num_args().is_some_and(|r| r.min_values() == 0);
            item = match (item.is_empty(), optional && !a.is_positional()) {
                (true, _) => value,
                (false, true) => format!("{item} [{value}]"),
                (false, false) => format!("{item} {value}"),
            };
        }
        let repeats = matches!(
            a.get_action(),
            clap::ArgAction::Append | clap::ArgAction::Count
        ) || a.get_num_args().is_some_and(|r| r.max_values() > 1);
        line.push(' ');
        if a.is_required_set() {
            line.push_str(&item);
        } else {
            line.push_str(&format!("[{item}]"));
        }
        if repeats {
            line.push_str("...");
        }
    }
    format!(".SH SYNOPSIS\n{line}\n")
}

/// clap_mangen's order of options: display order, then the short option (lower case
/// first), else the long one.
fn option_sort_key(a: &clap::Arg) -> (usize, String) {
    let key = match (a.get_short(), a.get_long()) {
        (Some(c), _) => format!(
            "{}{}",
            c.to_ascii_lowercase(),
            if c.is_ascii_lowercase() { '0' } else { '1' }
        ),
        (None, Some(l)) => l.to_string(),
        (None, None) => format!("{{{}", a.get_id()),
    };
    (a.get_display_order(), key)
}

/// Text for a roff line: a backslash is doubled and a hyphen is `\-` (a real minus, as
/// options are typed, rather than a hyphen that may print as a dash).
fn roff_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('-', "\\-")
}

/// The completion script of `page` for `shell`.
pub fn completion(page: &Page, shell: Shell) -> String {
    let mut cmd = page.command.clone().name(page.name);
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, page.name, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}
