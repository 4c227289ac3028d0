//! The POP3 command grammar (RFC 1939 §3, RFC 2449 §4 for the line limit), sans-IO: one
//! line in, a [`Command`] or the reason it is not one out. The server's session decides what
//! a command means in its state; this module only knows what was said.
//!
//! Kept strict where it costs a client nothing: message numbers are decimal digits only (a
//! `RETR -1` or `RETR 1x` is an error, not message 1), and a keyword takes exactly the
//! arguments RFC 1939 gives it. PASS is the exception: its argument is the rest of the line,
//! spaces included, as RFC 1939 §7 allows servers to take it.

/// The longest command line, CRLF included (RFC 2449 §4: 255 octets).
pub const MAX_LINE: usize = 255;

/// The longest SASL response line (RFC 5034 §4 sets no limit; a PLAIN response of a long
/// name and password in base64 fits with room).
pub const MAX_SASL_LINE: usize = 4096;

/// One client command.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// CAPA (RFC 2449 §5).
    Capa,
    /// STLS (RFC 2595 §4).
    Stls,
    /// USER name.
    User(String),
    /// PASS password (the rest of the line).
    Pass(String),
    /// AUTH [mechanism [initial-response]] (RFC 5034 §4); a bare AUTH asks for the list.
    Auth {
        /// The mechanism, upper-cased; `None` for the bare listing form.
        mechanism: Option<String>,
        /// The initial response (`=` for an empty one).
        initial: Option<String>,
    },
    /// APOP (not offered: it needs the password in the clear on our side).
    Apop,
    /// STAT.
    Stat,
    /// LIST [msg].
    List(Option<u64>),
    /// UIDL [msg].
    Uidl(Option<u64>),
    /// RETR msg.
    Retr(u64),
    /// TOP msg n.
    Top(u64, u64),
    /// DELE msg.
    Dele(u64),
    /// NOOP.
    Noop,
    /// RSET.
    Rset,
    /// QUIT.
    Quit,
}

/// Parse one line (its CRLF or LF included or not).
pub fn parse(line: &[u8]) -> Result<Command, &'static str> {
    let line = line
        .strip_suffix(b"\n")
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .unwrap_or(line);
    let line = std::str::from_utf8(line).map_err(|_| "command not UTF-8")?;
    if line.chars().any(|c| c.is_control()) {
        return Err("control character in command");
    }
    let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
    let keyword = keyword.to_ascii_uppercase();
    let args: Vec<&str> = rest.split(' ').filter(|a| !a.is_empty()).collect();
    let none = |c: Command| {
        if args.is_empty() {
            Ok(c)
        } else {
            Err("no argument expected")
        }
    };
    let one = || match args.as_slice() {
        [a] => Ok(*a),
        _ => Err("one argument expected"),
    };
    let optional_msg = || match args.as_slice() {
        [] => Ok(None),
        [a] => number(a).map(Some),
        _ => Err("at most one argument expected"),
    };
    match keyword.as_str() {
        "CAPA" => none(Command::Capa),
        "STLS" => none(Command::Stls),
        "USER" => Ok(Command::User(one()?.to_string())),
        // RFC 1939 §7: the password is what follows the one space (it may hold spaces).
        "PASS" if !rest.is_empty() => Ok(Command::Pass(rest.to_string())),
        "PASS" => Err("PASS needs a password"),
        "AUTH" => match args.as_slice() {
            [] => Ok(Command::Auth {
                mechanism: None,
                initial: None,
            }),
            [m] => Ok(Command::Auth {
                mechanism: Some(m.to_ascii_uppercase()),
                initial: None,
            }),
            [m, i] => Ok(Command::Auth {
                mechanism: Some(m.to_ascii_uppercase()),
                initial: Some(i.to_string()),
            }),
            _ => Err("AUTH takes a mechanism and an initial response"),
        },
        "APOP" => Ok(Command::Apop),
        "STAT" => none(Command::Stat),
        "LIST" => optional_msg().map(Command::List),
        "UIDL" => optional_msg().map(Command::Uidl),
        "RETR" => number(one()?).map(Command::Retr),
        "DELE" => number(one()?).map(Command::Dele),
        "TOP" => match args.as_slice() {
            [m, n] => Ok(Command::Top(number(m)?, number(n)?)),
            _ => Err("TOP takes a message number and a line count"),
        },
        "NOOP" => none(Command::Noop),
        "RSET" => none(Command::Rset),
        "QUIT" => none(Command::Quit),
        _ => Err("unknown command"),
    }
}

/// A message number or line count: decimal digits only.
fn number(s: &str) -> Result<u64, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a number");
    }
    s.parse().map_err(|_| "number too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_strictly() {
        assert_eq!(parse(b"capa\r\n"), Ok(Command::Capa));
        assert_eq!(parse(b"USER alice\r\n"), Ok(Command::User("alice".into())));
        assert_eq!(parse(b"PASS a b \r\n"), Ok(Command::Pass("a b ".into())));
        assert_eq!(parse(b"RETR 12\n"), Ok(Command::Retr(12)));
        assert_eq!(parse(b"TOP 1 0\r\n"), Ok(Command::Top(1, 0)));
        assert_eq!(parse(b"LIST\r\n"), Ok(Command::List(None)));
        assert_eq!(parse(b"UIDL 3\r\n"), Ok(Command::Uidl(Some(3))));
        assert_eq!(
            parse(b"AUTH plain AGEAYg==\r\n"),
            Ok(Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial: Some("AGEAYg==".into())
            })
        );
        for bad in [
            &b"RETR\r\n"[..],
            b"RETR -1\r\n",
            b"RETR 1x\r\n",
            b"RETR 99999999999999999999999\r\n",
            b"TOP 1\r\n",
            b"STAT 1\r\n",
            b"USER\r\n",
            b"USER a b\r\n",
            b"PASS\r\n",
            b"XYZZY\r\n",
            b"\xff\xfe\r\n",
            b"NOOP\0\r\n",
            b"\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
