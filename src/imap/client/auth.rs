//! Securing and logging in: STARTTLS (RFC 3501 §6.2.1) with the injection check, LOGIN
//! with quoted strings or literals (LITERAL+, RFC 7888), AUTHENTICATE (RFC 3501 §6.2.2)
//! with SASL-IR (RFC 4959) for PLAIN, XOAUTH2 and OAUTHBEARER. Apart from the session's
//! commands so each file stays one job.

use super::{Client, Credentials, Method, Response, Status, Stream, quote};
use crate::exit::{Code, Error, Result};
use crate::net::sasl;
use crate::net::tls::{self, Level};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Client {
    /// STARTTLS (RFC 3501 §6.2.1); required: not offered or refused is a failure.
    pub(super) fn starttls(&mut self, config: Arc<rustls::ClientConfig>, name: &str) -> Result<()> {
        if !self.has("STARTTLS") {
            return Err(Error::new(
                Code::Unavailable,
                &self.peer,
                "server does not offer STARTTLS, and TLS is required (--tls none to fetch in \
                 clear)",
            ));
        }
        let tag = self.send("STARTTLS", None)?;
        self.complete(&tag, "STARTTLS", |_, _| Ok(()))
            .map_err(|e| Error::new(Code::Unavailable, "STARTTLS", e.why()))?;
        // Bytes already here were sent before the handshake: an attacker's, possibly,
        // injected to be read as if they came over TLS.
        let waiting = self.wire.get_mut().io().is_some_and(|io| io.has_input());
        if self.wire.has_buffered() || waiting {
            self.broken = true;
            return Err(Error::new(
                Code::Protocol,
                "STARTTLS",
                "server sent data after its OK before the TLS handshake (response injection?)",
            ));
        }
        let Stream::Plain(mut io) = self.wire.replace(Stream::Closed) else {
            return Err(Error::new(Code::Software, "STARTTLS", "already in TLS"));
        };
        let t = self.opts.timeout;
        io.set_timeout(t.max(Duration::from_millis(1)));
        io.set_deadline(Instant::now().checked_add(t));
        self.broken = true;
        let mut stream = tls::upgrade(io, config, name)?;
        stream.sock.set_deadline(None);
        self.wire.replace(Stream::Tls(Box::new(stream)));
        self.broken = false;
        // RFC 3501 §6.2.1: capabilities learnt before TLS are forgotten.
        self.caps.clear();
        self.capability()
    }

    pub(super) fn authenticate(&mut self, cred: &Credentials) -> Result<()> {
        if !self.is_tls() && self.opts.tls.level != Level::None {
            return Err(Error::new(
                Code::Config,
                "LOGIN",
                "refusing to send credentials without TLS",
            ));
        }
        let method = match cred.method {
            Some(m) => m,
            None if self.has("LOGINDISABLED") => Method::Plain,
            None => Method::Login,
        };
        let result = match method {
            Method::Login => self.login(cred),
            m => self.sasl(m, cred),
        };
        match result {
            Ok((code, _)) => {
                // RFC 3501 §6.2.3: capabilities may change once authenticated.
                if code.is_none_or(|(c, _)| c != "CAPABILITY") {
                    self.capability()?;
                }
                Ok(())
            }
            Err(e) if e.code() == Code::TempFail && !self.broken => {
                Err(Error::new(Code::NoPerm, e.what(), e.why()))
            }
            Err(e) => Err(e),
        }
    }

    fn login(&mut self, cred: &Credentials) -> Result<(Option<(String, String)>, String)> {
        if self.has("LOGINDISABLED") {
            return Err(Error::new(
                Code::Unavailable,
                "LOGIN",
                "the server refuses LOGIN here (LOGINDISABLED)",
            ));
        }
        let user = self.astring(cred.user.as_bytes(), "LOGIN")?;
        let tag = self.next_tag();
        let mut head = format!("{tag} LOGIN {user} ");
        match quote(cred.secret.as_bytes()) {
            Some(q) => {
                self.trace(true, &format!("{tag} LOGIN {user} ***"));
                head.push_str(&q);
                head.push_str("\r\n");
                self.write(head.as_bytes(), "LOGIN")?;
            }
            None => {
                self.trace(true, &format!("{tag} LOGIN {user} {{***}}"));
                let secret = cred.secret.clone();
                self.literal(head.as_bytes(), secret.as_bytes(), "LOGIN")?;
                self.write(b"\r\n", "LOGIN")?;
            }
        }
        self.complete(&tag, "LOGIN", |_, _| Ok(()))
    }

    /// An astring argument: quoted when it can be; else the caller needs a literal.
    pub(super) fn astring(&self, s: &[u8], what: &str) -> Result<String> {
        quote(s).ok_or_else(|| {
            Error::new(
                Code::Config,
                what,
                "a value with a line break, NUL or 8-bit bytes cannot be sent",
            )
        })
    }

    /// Send `head` ending a line with a literal of `bytes` (RFC 3501 §4.3): non-synchronising
    /// with LITERAL+ (RFC 7888), else after the server's continuation.
    fn literal(&mut self, head: &[u8], bytes: &[u8], what: &str) -> Result<()> {
        let plus = self.has("LITERAL+") || (self.has("LITERAL-") && bytes.len() <= 4096);
        let mut out = head.to_vec();
        out.extend_from_slice(
            format!("{{{}{}}}\r\n", bytes.len(), if plus { "+" } else { "" }).as_bytes(),
        );
        if plus {
            out.extend_from_slice(bytes);
            return self.write(&out, what);
        }
        self.write(&out, what)?;
        match self.read(what)? {
            Response::Continue(_) => self.write(bytes, what),
            Response::Status { text, .. } => Err(Error::new(
                Code::TempFail,
                what,
                format!("server said: {text}"),
            )),
            Response::Data(_) => {
                self.broken = true;
                Err(Error::new(
                    Code::TempFail,
                    what,
                    "no continuation for a literal",
                ))
            }
        }
    }

    /// AUTHENTICATE (RFC 3501 §6.2.2) with an initial response: in the command with SASL-IR
    /// (RFC 4959), else after the first continuation.
    fn sasl(
        &mut self,
        method: Method,
        cred: &Credentials,
    ) -> Result<(Option<(String, String)>, String)> {
        let (name, initial) = match method {
            Method::Plain => ("PLAIN", sasl::plain(&cred.user, &cred.secret)),
            Method::XOAuth2 => ("XOAUTH2", sasl::xoauth2(&cred.user, &cred.secret)),
            Method::OAuthBearer => ("OAUTHBEARER", sasl::oauthbearer(&cred.user, &cred.secret)),
            Method::Login => ("LOGIN", String::new()),
        };
        let what = format!("AUTHENTICATE {name}");
        if !self.has(&format!("AUTH={name}")) {
            return Err(Error::new(
                Code::Unavailable,
                what,
                format!(
                    "not offered (server offers {})",
                    self.caps
                        .iter()
                        .filter(|c| c.starts_with("AUTH="))
                        .map(|c| &c[5..])
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            ));
        }
        let ir = self.has("SASL-IR");
        let tag = if ir {
            self.send(
                &format!("AUTHENTICATE {name} {initial}"),
                Some(&format!("AUTHENTICATE {name} ***")),
            )?
        } else {
            self.send(&format!("AUTHENTICATE {name}"), None)?
        };
        // Continuations answered so far, the initial response counted when in the command.
        let mut answered = usize::from(ir);
        loop {
            match self.read(&what)? {
                Response::Continue(_) => {
                    // The initial response; then, after an error challenge (JSON), an empty
                    // response for XOAUTH2 or a single ^A for OAUTHBEARER (RFC 7628 §3.2.3)
                    // gets the verdict; a challenge after that is cancelled with `*`
                    // (RFC 3501 §6.2.2), and one after the cancel ends the session.
                    let line = match (answered, method) {
                        (0, _) => initial.clone(),
                        (1, Method::OAuthBearer) => sasl::encode(b"\x01"),
                        (1, _) => String::new(),
                        (2, _) => "*".to_string(),
                        _ => {
                            self.broken = true;
                            return Err(Error::new(
                                Code::TempFail,
                                what,
                                "the server goes on asking after a cancel",
                            ));
                        }
                    };
                    answered += 1;
                    self.trace(true, "***");
                    self.write(format!("{line}\r\n").as_bytes(), &what)?;
                }
                Response::Status {
                    tag: Some(t),
                    status,
                    code,
                    text,
                } if t == tag => {
                    return match status {
                        Status::Ok => Ok((code, text)),
                        _ => Err(Error::new(
                            Code::NoPerm,
                            what,
                            format!("server said: {text}"),
                        )),
                    };
                }
                Response::Status { tag: Some(_), .. } => {
                    self.broken = true;
                    return Err(Error::new(
                        Code::TempFail,
                        what,
                        "completion for unknown tag",
                    ));
                }
                _ => {}
            }
        }
    }
}
