//! DNS records as mailpipe reads them: the question's record type, an answer's records
//! turned into an [`Answer`], and the names of types and response codes for messages. Shared
//! by the two ways a question is asked: hickory's resolver (`resolver.rs`) and the AD-bit
//! queries of DANE (`ad.rs`), so neither needs the other's helpers.

use super::{Answer, Type};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use std::net::IpAddr;

/// The DNS record type of a question.
pub(super) fn record_type(kind: Type) -> RecordType {
    match kind {
        Type::Mx => RecordType::MX,
        Type::A => RecordType::A,
        Type::Aaaa => RecordType::AAAA,
        Type::Tlsa => RecordType::TLSA,
        Type::Txt => RecordType::TXT,
    }
}

/// The records of the asked type in an answer (CNAMEs on the way are skipped: hickory
/// follows them, RFC 5321 §5.1).
pub(super) fn records(kind: Type, answers: &[hickory_resolver::proto::rr::Record]) -> Answer {
    match kind {
        Type::Tlsa => {
            let v: Vec<crate::net::dane::Tlsa> = answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TLSA(t) => Some(crate::net::dane::Tlsa {
                        usage: t.cert_usage.into(),
                        selector: t.selector.into(),
                        matching: t.matching.into(),
                        data: t.cert_data.clone(),
                    }),
                    _ => None,
                })
                .collect();
            if v.is_empty() {
                Answer::NoData
            } else {
                Answer::Tlsa(v)
            }
        }
        Type::Txt => {
            // RFC 8461 §3.1: a record's strings are joined with nothing between them.
            let v: Vec<String> = answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => Some(
                        t.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect();
            if v.is_empty() {
                Answer::NoData
            } else {
                Answer::Txt(v)
            }
        }
        Type::Mx => {
            let mx: Vec<(u16, String)> = answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((
                        mx.preference,
                        mx.exchange.to_ascii().trim_end_matches('.').to_string(),
                    )),
                    _ => None,
                })
                .collect();
            if mx.is_empty() {
                Answer::NoData
            } else {
                Answer::Mx(mx)
            }
        }
        Type::A | Type::Aaaa => {
            let addrs: Vec<IpAddr> = answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) if kind == Type::A => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) if kind == Type::Aaaa => Some(IpAddr::V6(a.0)),
                    _ => None,
                })
                .collect();
            if addrs.is_empty() {
                Answer::NoData
            } else {
                Answer::Addrs(addrs)
            }
        }
    }
}

pub(super) fn type_name(kind: Type) -> &'static str {
    match kind {
        Type::Mx => "MX",
        Type::A => "A",
        Type::Aaaa => "AAAA",
        Type::Tlsa => "TLSA",
        Type::Txt => "TXT",
    }
}

/// The RCODE as dig and the logs of DNS servers write it.
pub(super) fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::ServFail => "SERVFAIL".to_string(),
        ResponseCode::Refused => "REFUSED".to_string(),
        ResponseCode::FormErr => "FORMERR".to_string(),
        ResponseCode::NotImp => "NOTIMP".to_string(),
        other => format!("rcode {}", u16::from(other)),
    }
}
