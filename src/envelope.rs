//! The envelope (RFC 5321 §2.3.1): who a message is from and for, apart from its text, with
//! what the transaction said about it (DSN parameters, RFC 3461; body type, RFC 6152; UTF-8
//! addresses, RFC 6531).
//!
//! One type for every place an envelope lives: the SMTP server builds it from MAIL and RCPT,
//! the SMTP client sends it, the queue stores it, and a delivery reads its sender and
//! recipient. It sits at the ground of the house, below `store/` and `smtp/`, because all of
//! them hold one; what is particular to one of them stays there (the local user the server
//! found for a recipient, the queue's route and retry state).

/// The body type, as MAIL's BODY= parameter says it (RFC 6152).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Body {
    /// 7-bit text (no BODY=, or BODY=7BIT).
    #[default]
    SevenBit,
    /// Octets over 127 in the content (BODY=8BITMIME where the server offers it).
    EightBitMime,
}

impl Body {
    /// The body type of content that has (`true`) or has not octets over 127.
    pub fn of(eight_bit: bool) -> Body {
        if eight_bit {
            Body::EightBitMime
        } else {
            Body::SevenBit
        }
    }

    /// True for 8-bit content.
    pub fn is_eight_bit(self) -> bool {
        self == Body::EightBitMime
    }
}

/// One message's envelope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse path; empty for `<>`.
    pub from: String,
    /// The recipients, in order.
    pub rcpts: Vec<Recipient>,
    /// The body type.
    pub body: Body,
    /// An address may be UTF-8 (MAIL ... SMTPUTF8, RFC 6531).
    pub smtputf8: bool,
    /// DSN RET=FULL or HDRS (RFC 3461 §4.3).
    pub ret: Option<String>,
    /// DSN ENVID= (RFC 3461 §4.4), plain text; xtext-encoded when sent.
    pub envid: Option<String>,
    /// The message size in octets, when known (SIZE=, RFC 1870).
    pub size: Option<u64>,
    /// MAIL ... REQUIRETLS (RFC 8689 §4): every hop over verified TLS, or a bounce. Taken by
    /// the server over TLS only, kept in the queue (`requiretls 1`), sent on by mrelay.
    pub requiretls: bool,
}

impl Envelope {
    /// An envelope from `from` to `rcpts`, without DSN parameters.
    pub fn new<S: Into<String>>(
        from: impl Into<String>,
        rcpts: impl IntoIterator<Item = S>,
    ) -> Self {
        let mut env = Envelope {
            from: from.into(),
            rcpts: rcpts.into_iter().map(Recipient::new).collect(),
            ..Envelope::default()
        };
        env.smtputf8 = env.needs_smtputf8();
        env
    }

    /// True when an address is not ASCII, so the transaction needs SMTPUTF8 (RFC 6531 §3.4).
    pub fn needs_smtputf8(&self) -> bool {
        !self.from.is_ascii() || self.rcpts.iter().any(|r| !r.addr.is_ascii())
    }

    /// The same envelope for only the recipients `keep` says yes to.
    pub fn only(&self, mut keep: impl FnMut(usize, &Recipient) -> bool) -> Envelope {
        Envelope {
            rcpts: (self.rcpts.iter().enumerate())
                .filter(|(i, r)| keep(*i, r))
                .map(|(_, r)| r.clone())
                .collect(),
            ..self.clone()
        }
    }
}

/// One recipient.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recipient {
    /// The mailbox.
    pub addr: String,
    /// DSN NOTIFY= value: NEVER, or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461 §4.1).
    pub notify: Option<String>,
    /// DSN ORCPT= (RFC 3461 §4.2): the original recipient, as `type;address`.
    pub orcpt: Option<String>,
}

impl Recipient {
    /// A recipient without DSN parameters.
    pub fn new(addr: impl Into<String>) -> Recipient {
        Recipient {
            addr: addr.into(),
            ..Recipient::default()
        }
    }
}

/// xtext encoding for ENVID and ORCPT values (RFC 3461 §4): `+`, `=`, controls and
/// non-ASCII become `+HH`. The SMTP client sends them so; a delivery report writes a value
/// so when it cannot be written as it is.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtputf8_follows_the_addresses_and_only_keeps_the_rest() {
        assert!(!Envelope::new("a@x", ["b@y"]).smtputf8);
        assert!(Envelope::new("a@x", ["b@ÿ"]).smtputf8);
        let mut env = Envelope::new("", ["a@x", "b@x", "c@x"]);
        env.envid = Some("id".into());
        let kept = env.only(|i, _| i != 1);
        assert_eq!(kept.rcpts, [Recipient::new("a@x"), Recipient::new("c@x")]);
        assert_eq!(kept.envid.as_deref(), Some("id"));
        assert_eq!(Body::of(true), Body::EightBitMime);
        assert!(!Body::default().is_eight_bit());
    }
}
