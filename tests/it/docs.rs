//! The committed man pages and completions must be what the clap definitions render now.
//! `make docs` (MAILPIPE_REGEN=1) rewrites them.

use crate::common;

use std::path::Path;
use std::process::Command;

#[test]
fn generated_docs_are_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let regen = std::env::var_os("MAILPIPE_REGEN").is_some();
    let mut stale = Vec::new();
    for (rel, want) in mailpipe::cmd::generated() {
        let path = root.join(&rel);
        if regen {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(rel.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated docs (run `make docs`): {stale:?}"
    );
}

#[test]
fn every_binary_has_a_page() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pages: Vec<_> = mailpipe::cmd::pages().iter().map(|p| p.name).collect();
    for entry in std::fs::read_dir(root.join("src/bin")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let tool = name.trim_end_matches(".rs");
        assert!(
            pages.contains(&tool),
            "{tool} has no docs page in cmd::pages()"
        );
    }
    for page in mailpipe::cmd::pages() {
        let man = mailpipe::docs::man(&page);
        for section in ["EXIT STATUS", "EXAMPLES", "SEE ALSO"] {
            assert!(
                man.contains(&format!(".SH {section}")),
                "{}: no {section}",
                page.name
            );
        }
    }
}

#[test]
fn synopsis_shows_each_option_with_its_value() {
    // It showed `[-f|--from]`: a reader could not tell which options take a value.
    for page in mailpipe::cmd::pages() {
        let man = mailpipe::docs::man(&page);
        let synopsis = man
            .split(".SH SYNOPSIS\n")
            .nth(1)
            .and_then(|s| s.lines().next())
            .unwrap_or_else(|| panic!("{}: no SYNOPSIS", page.name));
        let mut cmd = page.command.clone();
        cmd.build();
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let takes = arg.get_num_args().is_some_and(|r| r.takes_values());
            let Some(names) = arg.get_value_names().filter(|_| takes) else {
                continue;
            };
            let value = format!("\\fI{}\\fR", names.join(" ").replace('-', "\\-"));
            // An optional value (mrelay's `--flush [ID]`) in brackets.
            let optional = arg.get_num_args().is_some_and(|r| r.min_values() == 0);
            let value = match optional {
                true => format!("[{value}]"),
                false => value,
            };
            let option = match (arg.get_short(), arg.get_long()) {
                (_, Some(l)) => format!("\\fB\\-\\-{}\\fR ", l.replace('-', "\\-")),
                (Some(s), None) => format!("\\fB\\-{s}\\fR "),
                (None, None) => String::new(),
            };
            let want = format!("{option}{value}");
            assert!(
                synopsis.contains(&want),
                "{}: {want} not in {synopsis}",
                page.name
            );
        }
    }
}

/// The code lines of a README (indented blocks) or a man page (between .nf and .fi).
fn code_lines(text: &str, roff: bool) -> Vec<&str> {
    if !roff {
        return text.lines().filter(|l| l.starts_with("    ")).collect();
    }
    let mut inside = false;
    text.lines()
        .filter(|l| {
            match *l {
                ".nf" => inside = true,
                ".fi" => inside = false,
                _ => {}
            }
            inside && !l.starts_with('.')
        })
        .collect()
}

#[test]
fn examples_call_mdeliver_by_its_absolute_path() {
    // Debian's mblaze has its own /usr/bin/mdeliver, which cron and Postfix (PATH
    // /usr/bin:/bin) find first: an example with a bare `mdeliver` runs the wrong program.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![(root.join("README.md"), false)];
    for entry in std::fs::read_dir(root.join("man")).unwrap() {
        docs.push((entry.unwrap().path(), true));
    }
    for (path, roff) in docs {
        let text = std::fs::read_to_string(&path).unwrap();
        // (A comment line in an example is prose.)
        for line in code_lines(&text, roff)
            .into_iter()
            .filter(|l| !l.trim_start().starts_with('#'))
        {
            for (i, _) in line.match_indices("mdeliver") {
                let before = line[..i].chars().next_back();
                let after = line[i + "mdeliver".len()..].chars().next();
                // (`mdeliver:` is its diagnostic quoted in a log line, not a command.)
                let command = !matches!(before, Some(c) if c.is_alphanumeric() || c == '/' || c == '_')
                    && !matches!(after, Some(c) if c.is_alphanumeric() || c == '_' || c == '(' || c == ':');
                // master.cf's service name is not a command.
                let service = line[i..].starts_with("mdeliver unix");
                assert!(
                    !command || service,
                    "{}: bare mdeliver in an example: {line}",
                    path.display()
                );
            }
        }
    }
    // And the clash is stated where a user looks.
    for (file, text) in [
        ("README.md", "/usr/bin/mdeliver"),
        ("man/mdeliver.1", "/usr/bin/mdeliver"),
        ("Makefile", "/usr/bin/mdeliver"),
    ] {
        let body = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            body.contains(text) && body.contains("mblaze"),
            "{file} does not warn about mblaze's {text}"
        );
    }
}

/// Every page under man/, generated or hand-written, with its text.
fn man_pages() -> Vec<(std::path::PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages: Vec<_> = std::fs::read_dir(root.join("man"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    assert!(pages.len() >= 6, "man/: {pages:?}");
    pages
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

#[test]
fn man_pages_pass_mandoc_lint() {
    // Every generated .TH carried "mailpipe 0.1.0" where the date goes, the hand-written
    // pages had no date, and msubmit.1 had `.br` around an empty line: mandoc warned of each.
    if !common::have(&["mandoc"]) {
        return;
    }
    for (path, _) in man_pages() {
        let out = Command::new("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .arg(&path)
            .output()
            .unwrap();
        let said = [out.stdout, out.stderr].concat();
        assert!(
            out.status.success() && said.is_empty(),
            "{}: mandoc -T lint -W warning: {}",
            path.display(),
            String::from_utf8_lossy(&said)
        );
    }
}

#[test]
fn pages_carry_the_version_and_its_date() {
    // The date is the version's, written beside it in src/docs.rs: a new version with the
    // old date fails here, and a build date would make the pages stale every day.
    assert_eq!(
        mailpipe::docs::VERSION,
        env!("CARGO_PKG_VERSION"),
        "Cargo.toml has a new version: set VERSION and DATE in src/docs.rs"
    );
    let date = mailpipe::docs::DATE;
    let ymd: Vec<&str> = date.split('-').collect();
    assert!(
        ymd.len() == 3
            && [4, 2, 2]
                .iter()
                .zip(&ymd)
                .all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_digit())),
        "{date}: not YYYY-MM-DD"
    );
    let source = format!("\"mailpipe {}\"", mailpipe::docs::VERSION);
    for (path, text) in man_pages() {
        // .TH title section date source manual
        let th = text.lines().find(|l| l.starts_with(".TH ")).unwrap_or("");
        let th_date = th.split_whitespace().nth(3).map(|d| d.trim_matches('"'));
        assert!(
            th_date == Some(date) && th.contains(&source),
            "{}: {th}",
            path.display()
        );
    }
}

/// Every `.rs` file under `dir`, with its text.
fn rust_sources(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(&path).unwrap());
        }
    }
    out
}

#[test]
fn every_dependency_has_a_use() {
    // lettre sat in Cargo.toml with nothing using it (and rustls-pki-types, which rustls's
    // own `std` feature already sets up): each one built on every clean build for nothing.
    // What was bypassed, and why, is in the README's dependency notes.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for (section, dir) in [("[dependencies]", "src"), ("[dev-dependencies]", "tests")] {
        let sources = rust_sources(&root.join(dir)).concat();
        let deps = manifest
            .split(section)
            .nth(1)
            .unwrap_or_else(|| panic!("Cargo.toml: no {section}"))
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with('['))
            .filter_map(|l| l.split_once(" = ").map(|(name, _)| name.trim()))
            .filter(|name| !name.starts_with('#'));
        for dep in deps {
            // The crate's name in code: rustls-webpki's library is `webpki`.
            let ident = match dep {
                "rustls-webpki" => "webpki".to_string(),
                d => d.replace('-', "_"),
            };
            assert!(
                sources.contains(&format!("{ident}::"))
                    || sources.contains(&format!("use {ident}")),
                "{section} {dep}: nothing in {dir}/ uses it"
            );
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let notes = readme
        .split("## Dependency notes")
        .nth(1)
        .expect("README.md: no Dependency notes section");
    for bypassed in ["lettre", "maildir"] {
        assert!(notes.contains(bypassed), "README.md: no note on {bypassed}");
    }
}
