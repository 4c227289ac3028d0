//! The binary edge: what every `src/bin/<tool>.rs` calls, and the only place that exits.
//!
//! It parses the command line (a usage error exits 64, `--help` and `--version` exit 0), runs
//! the tool, prints a failure as `tool: what: why` on stderr, treats a broken pipe as success
//! (ripgrep's and coreutils' manners: `tool | head` is not an error) and flushes stdout before
//! deciding the exit status, so an unwritable stdout is never reported as success.

use crate::exit::{Code, Error, Result};
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::OnceLock;

static TOOL: OnceLock<&'static str> = OnceLock::new();

/// The name of the running tool, for diagnostics ("mailpipe" before [`main`] set it).
pub fn tool() -> &'static str {
    TOOL.get().copied().unwrap_or("mailpipe")
}

/// Print a non-fatal diagnostic, `tool: message`, on stderr.
pub fn warn(message: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "{}: {message}", tool());
}

/// Parse the process arguments into `A` and run `body`; returns the process exit code.
pub fn main<A: clap::Parser>(tool: &'static str, body: impl FnOnce(A) -> Result<()>) -> ExitCode {
    main_from(tool, std::env::args_os(), body)
}

/// [`main`] with explicit arguments: tools with a legacy command line (sendmail's `-oi`)
/// rewrite theirs before clap sees it.
pub fn main_from<A: clap::Parser>(
    tool: &'static str,
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    body: impl FnOnce(A) -> Result<()>,
) -> ExitCode {
    let _ = TOOL.set(tool);
    let args = match A::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => return usage_error(e),
    };
    finish(body(args))
}

fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text).trim_end();
            warn(format_args!("usage: {text}"));
            exit_code(Code::Usage)
        }
    }
}

/// Turn a tool's result into the exit code, flushing stdout first.
pub fn finish(result: Result<()>) -> ExitCode {
    let flushed = std::io::stdout()
        .flush()
        .map_err(|e| Error::io(Code::IoErr, "stdout", e));
    match result.and(flushed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            warn(&e);
            exit_code(e.code())
        }
    }
}

fn exit_code(code: Code) -> ExitCode {
    ExitCode::from(code.as_i32() as u8)
}

/// Print `text` on standard output after the work is already committed (a delivered file's
/// path). A failure to print is then only a warning: turning it into an error exit would make
/// the caller retry work that is done, and deliver the message twice. Written straight to fd 1
/// with no buffering, so nothing is left behind for [`finish`]'s flush to fail on.
pub fn print_committed(text: &str) {
    use std::os::fd::FromRawFd;
    // SAFETY: fd 1 stays open for the life of the process; ManuallyDrop never closes it.
    let mut out = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
    if let Err(e) = out.write_all(text.as_bytes())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        warn(format_args!("stdout: {}", crate::exit::describe_io(&e)));
    }
}
