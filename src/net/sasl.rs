//! SASL for SMTP AUTH (RFC 4954) and IMAP AUTHENTICATE: the client responses for PLAIN
//! (RFC 4616), LOGIN, XOAUTH2 and OAUTHBEARER (RFC 7628), and the PLAIN decoding a server
//! needs. Sans-IO: base64 in, base64 out.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The mechanisms the client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// PLAIN: authzid NUL authcid NUL password, in one initial response.
    Plain,
    /// LOGIN: user name and password each after a 334 challenge (not standardized, widely used).
    Login,
    /// XOAUTH2: an OAuth 2.0 bearer token (Google, Microsoft).
    XOAuth2,
}

impl Mechanism {
    /// The mechanism's name as sent in `AUTH`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::XOAuth2 => "XOAUTH2",
        }
    }

    /// Parse a name (any case); `None` for one we do not speak.
    pub fn from_name(s: &str) -> Option<Mechanism> {
        match s.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Mechanism::Plain),
            "LOGIN" => Some(Mechanism::Login),
            "XOAUTH2" => Some(Mechanism::XOAuth2),
            _ => None,
        }
    }
}

/// Base64 of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decode base64 sent by the peer; `None` when it is not base64.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.trim()).ok()
}

/// The PLAIN initial response for `user` and `password` (no authorization identity).
pub fn plain(user: &str, password: &str) -> String {
    let mut raw = Vec::with_capacity(user.len() + password.len() + 2);
    raw.push(0);
    raw.extend_from_slice(user.as_bytes());
    raw.push(0);
    raw.extend_from_slice(password.as_bytes());
    encode(&raw)
}

/// The XOAUTH2 initial response: `user=U^Aauth=Bearer T^A^A`.
pub fn xoauth2(user: &str, token: &str) -> String {
    encode(format!("user={user}\x01auth=Bearer {token}\x01\x01").as_bytes())
}

/// The OAUTHBEARER initial response (RFC 7628 §3.1): a GS2 header naming the user, then
/// `auth=Bearer T` between ^A separators. Host and port are optional there and left out.
pub fn oauthbearer(user: &str, token: &str) -> String {
    // RFC 5801 §4: `,` and `=` in the name are escaped as =2C and =3D.
    let user = user.replace('=', "=3D").replace(',', "=2C");
    encode(format!("n,a={user},\x01auth=Bearer {token}\x01\x01").as_bytes())
}

/// What a PLAIN response carries (RFC 4616 §2).
#[derive(Debug, PartialEq, Eq)]
pub struct PlainCredentials {
    /// The authorization identity (empty when the client acts as itself).
    pub authzid: String,
    /// The authentication identity (the user name).
    pub user: String,
    /// The password.
    pub password: String,
}

/// Decode a PLAIN response as a server; `None` when it is malformed.
pub fn decode_plain(response: &str) -> Option<PlainCredentials> {
    let raw = decode(response)?;
    let mut parts = raw.split(|&b| b == 0);
    let authzid = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let user = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let password = String::from_utf8(parts.next()?.to_vec()).ok()?;
    if parts.next().is_some() || user.is_empty() {
        return None;
    }
    Some(PlainCredentials {
        authzid,
        user,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_round_trips() {
        let r = plain("alice", "secret");
        assert_eq!(r, "AGFsaWNlAHNlY3JldA==");
        let c = decode_plain(&r).unwrap();
        assert_eq!(
            (c.authzid.as_str(), c.user.as_str(), c.password.as_str()),
            ("", "alice", "secret")
        );
        assert!(decode_plain("!!").is_none());
        assert!(decode_plain(&encode(b"a\0b")).is_none());
    }

    #[test]
    fn xoauth2_format() {
        let d = decode(&xoauth2("u@x", "tok")).unwrap();
        assert_eq!(d, b"user=u@x\x01auth=Bearer tok\x01\x01");
        assert_eq!(Mechanism::from_name("login"), Some(Mechanism::Login));
        assert_eq!(Mechanism::from_name("cram-md5"), None);
    }

    #[test]
    fn oauthbearer_format() {
        let d = decode(&oauthbearer("u,=@x", "tok")).unwrap();
        assert_eq!(d, b"n,a=u=2C=3D@x,\x01auth=Bearer tok\x01\x01");
    }
}
