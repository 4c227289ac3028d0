//! Exit codes from sysexits.h and the one error type every tool returns.
//!
//! Mail software speaks sysexits: an MTA that runs us (Postfix's pipe(8), Exim, fetchmail's
//! `--mda`) reads 75 as "try again later" and 64–78 otherwise as "bounce". So every failure in
//! the library carries the code that tells the caller which of the two it is, and only the
//! binary edge ([`crate::run`]) turns it into a process exit.

use std::fmt;
use std::io;

/// A sysexits.h exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// 0: success.
    Ok,
    /// 64 EX_USAGE: the command was used incorrectly.
    Usage,
    /// 65 EX_DATAERR: the input data was incorrect.
    DataErr,
    /// 66 EX_NOINPUT: an input file did not exist or was not readable.
    NoInput,
    /// 67 EX_NOUSER: addressee unknown.
    NoUser,
    /// 68 EX_NOHOST: host name unknown.
    NoHost,
    /// 69 EX_UNAVAILABLE: service unavailable.
    Unavailable,
    /// 70 EX_SOFTWARE: internal software error.
    Software,
    /// 71 EX_OSERR: system error (e.g. cannot fork).
    OsErr,
    /// 73 EX_CANTCREAT: cannot create an output file.
    CantCreat,
    /// 74 EX_IOERR: input/output error.
    IoErr,
    /// 75 EX_TEMPFAIL: temporary failure; the caller should retry later.
    TempFail,
    /// 76 EX_PROTOCOL: remote error in protocol.
    Protocol,
    /// 77 EX_NOPERM: permission denied.
    NoPerm,
    /// 78 EX_CONFIG: configuration error.
    Config,
}

impl Code {
    /// The numeric exit status.
    pub fn as_i32(self) -> i32 {
        match self {
            Code::Ok => 0,
            Code::Usage => 64,
            Code::DataErr => 65,
            Code::NoInput => 66,
            Code::NoUser => 67,
            Code::NoHost => 68,
            Code::Unavailable => 69,
            Code::Software => 70,
            Code::OsErr => 71,
            Code::CantCreat => 73,
            Code::IoErr => 74,
            Code::TempFail => 75,
            Code::Protocol => 76,
            Code::NoPerm => 77,
            Code::Config => 78,
        }
    }

    /// True for the one code that means "nothing was lost, try again later".
    pub fn is_temporary(self) -> bool {
        self == Code::TempFail
    }
}

/// An error with its exit code: `what` failed because of `why`.
///
/// Rendered as `what: why`; the runner prefixes the tool name, giving the house format
/// `tool: what: why`.
#[derive(Debug)]
pub struct Error {
    code: Code,
    what: String,
    why: String,
    io_kind: Option<io::ErrorKind>,
}

/// The result type of the whole library.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A new error with `code`, saying what failed and why.
    pub fn new(code: Code, what: impl Into<String>, why: impl fmt::Display) -> Error {
        Error {
            code,
            what: what.into(),
            why: why.to_string(),
            io_kind: None,
        }
    }

    /// An I/O error while doing `what`. The code is the caller's call: the same ENOSPC is a
    /// temporary failure for a delivery agent and an I/O error for a file converter.
    pub fn io(code: Code, what: impl Into<String>, err: io::Error) -> Error {
        Error {
            code,
            what: what.into(),
            why: describe_io(&err),
            io_kind: Some(err.kind()),
        }
    }

    /// The exit code this error carries.
    pub fn code(&self) -> Code {
        self.code
    }

    /// What failed.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Why it failed.
    pub fn why(&self) -> &str {
        &self.why
    }

    /// The same error with another exit code.
    pub fn with_code(mut self, code: Code) -> Error {
        self.code = code;
        self
    }

    /// The same error with more context in front of `what`.
    pub fn context(mut self, outer: impl fmt::Display) -> Error {
        self.what = if self.what.is_empty() {
            outer.to_string()
        } else {
            format!("{outer}: {}", self.what)
        };
        self
    }

    /// True when writing to our output failed because the reader went away: not an error
    /// for a Unix filter (`mcompose | head` must exit quietly).
    pub fn is_broken_pipe(&self) -> bool {
        self.io_kind == Some(io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.what.is_empty() {
            write!(f, "{}", self.why)
        } else if self.why.is_empty() {
            write!(f, "{}", self.what)
        } else {
            write!(f, "{}: {}", self.what, self.why)
        }
    }
}

impl std::error::Error for Error {}

/// The text of an I/O error without Rust's " (os error N)" suffix: users read strerror(3).
pub fn describe_io(err: &io::Error) -> String {
    let s = err.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

/// Attach a code and context to a foreign error.
pub trait Context<T> {
    /// Turn the error into an [`Error`] with `code`, saying `what` failed.
    fn or_code(self, code: Code, what: impl Into<String>) -> Result<T>;
    /// Like [`Context::or_code`] with a lazily built `what`.
    fn or_code_with<S: Into<String>>(self, code: Code, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn or_code(self, code: Code, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::io(code, what, e))
    }
    fn or_code_with<S: Into<String>>(self, code: Code, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::io(code, what(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_sysexits_h() {
        assert_eq!(Code::Usage.as_i32(), 64);
        assert_eq!(Code::TempFail.as_i32(), 75);
        assert_eq!(Code::Config.as_i32(), 78);
        assert!(Code::TempFail.is_temporary());
        assert!(!Code::DataErr.is_temporary());
    }

    #[test]
    fn io_errors_read_like_strerror() {
        let e = Error::io(
            Code::TempFail,
            "write tmp/x",
            io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert_eq!(e.to_string(), "write tmp/x: no space left on device");
        let e = e.context("deliver");
        assert_eq!(e.what(), "deliver: write tmp/x");
    }

    #[test]
    fn broken_pipe_is_recognised() {
        let e = Error::io(Code::IoErr, "stdout", io::ErrorKind::BrokenPipe.into());
        assert!(e.is_broken_pipe());
    }
}
