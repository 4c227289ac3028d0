//! The network: what every protocol (SMTP now, POP3 and IMAP next) needs below its grammar.
//!
//! [`conn`] is a server connection over any byte stream ([`conn::Io`]: a socket, stdio from
//! inetd, or memory in tests) with deadlines, bounded line reads and STARTTLS; [`tls`] builds
//! the rustls client and server configurations and explains their failures; [`sasl`] encodes
//! and decodes SASL PLAIN and LOGIN; [`listen`] is the accept loop of a listening server
//! (bounded sessions, graceful stop on SIGTERM); [`dns`] finds where mail for a domain goes
//! (MX, implicit MX, null MX, loops to this host, address literals: RFC 5321 §5.1);
//! [`dial`] opens a client's TCP connection, from a chosen source address and directly or
//! through a SOCKS5 proxy, whose protocol is [`socks`]'s (RFC 1928, RFC 1929); [`x509`]
//! reads a certificate's subject, issuer, dates and names to show a person; [`dane`] checks
//! a server's chain against its DNSSEC-validated TLSA records (RFC 7672); [`https`] is the
//! one HTTPS GET of MTA-STS's policy fetch (RFC 8461 §3.3).

pub mod conn;
pub mod dane;
pub mod dial;
pub mod dns;
pub mod https;
pub mod listen;
pub mod sasl;
pub mod socks;
pub mod tls;
pub mod x509;
