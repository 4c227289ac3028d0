//! TLS-RPT (RFC 8460): what became of each TLS attempt towards an MX host, recorded per
//! policy domain (the recipient domain) and policy type (DANE's `tlsa`, MTA-STS's `sts`, or
//! `no-policy-found`), and the day's aggregate report in RFC 8460 §4's JSON.
//!
//! Recording is cheap and append-only: one tab-separated line per session, written with one
//! `write` to `QUEUE/tls-rpt/YYYY-MM-DD` (UTC) opened `O_APPEND`, so parallel queue runs
//! interleave whole lines. It is not fsynced: a report is statistics, and a line lost in a
//! crash costs a count, never mail. The report reads the day's file once and sums it.
//!
//! Sessions that never reached TLS (a refused connection, a timeout) are not TLS results
//! and are not recorded; failures are classified by the error the client reports
//! (RFC 8460 §4.3's result types).

use crate::exit::{Code, Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The policy a session was held to (RFC 8460 §4.4 `policy-type`).
pub fn policy_type(by: &str) -> &'static str {
    if by.starts_with("dane") {
        "tlsa"
    } else if by.starts_with("mta-sts") {
        "sts"
    } else {
        "no-policy-found"
    }
}

/// RFC 8460 §4.3's result type of a failed session's error, or `None` when the session
/// failed before TLS was at stake (not a TLS result).
pub fn result_type(error: &str) -> Option<&'static str> {
    let e = error.to_ascii_lowercase();
    let t = if e.contains("does not offer starttls") {
        "starttls-not-supported"
    } else if e.contains("not valid for") {
        "certificate-host-mismatch"
    } else if e.contains("expired on") || e.contains("expired") && e.contains("certificate") {
        "certificate-expired"
    } else if e.contains("not trusted") {
        "certificate-not-trusted"
    } else if e.contains("tlsa") || e.contains("tls") || e.contains("certificate") {
        "validation-failure"
    } else {
        return None;
    };
    Some(t)
}

/// The day (UTC, `YYYY-MM-DD`) of Unix time `t`.
pub fn day(t: u64) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// Append one session's result: `result` is `success` or a result type. Best effort: the
/// caller may only warn.
pub fn record(
    dir: &Path,
    now: u64,
    domain: &str,
    policy: &str,
    result: &str,
    mx: &str,
    ip: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let line = format!(
        "{now}\t{}\t{policy}\t{result}\t{}\t{}\n",
        clean(&domain.to_ascii_lowercase()),
        clean(mx),
        clean(ip)
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(dir.join(day(now)))?;
    f.write_all(line.as_bytes())
}

/// Per policy domain and type: successes, and failures by (type, MX, IP).
#[derive(Default)]
struct Sums {
    ok: u64,
    failed: BTreeMap<(String, String, String), u64>,
    mx: std::collections::BTreeSet<String>,
}

/// The reports of day `date` (`YYYY-MM-DD`), one JSON document per policy domain (the unit
/// RFC 8460 §3 sends to the domain's `rua`), by `org` with `contact`.
pub fn reports(dir: &Path, date: &str, org: &str, contact: &str) -> Result<Vec<(String, String)>> {
    let bad_date = || Error::new(Code::Usage, date, "not a date (YYYY-MM-DD)");
    let start = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| bad_date())?;
    let path = dir.join(date);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(Code::IoErr, path.display().to_string(), e)),
    };
    let mut by: BTreeMap<String, BTreeMap<String, Sums>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [_, domain, policy, result, mx, ip] = f[..] else {
            continue;
        };
        let sums = (by.entry(domain.into()).or_default())
            .entry(policy.into())
            .or_default();
        sums.mx.insert(mx.into());
        match result {
            "success" => sums.ok += 1,
            t => {
                *sums
                    .failed
                    .entry((t.into(), mx.into(), ip.into()))
                    .or_default() += 1
            }
        }
    }
    let mut out = Vec::new();
    for (domain, policies) in by {
        let policies: Vec<serde_json::Value> = policies
            .into_iter()
            .map(|(policy, s)| {
                let failures: u64 = s.failed.values().sum();
                serde_json::json!({
                    "policy": {
                        "policy-type": policy,
                        "policy-domain": domain,
                        "mx-host": s.mx.iter().collect::<Vec<_>>(),
                    },
                    "summary": {
                        "total-successful-session-count": s.ok,
                        "total-failure-session-count": failures,
                    },
                    "failure-details": s.failed.iter().map(|((t, mx, ip), n)| serde_json::json!({
                        "result-type": t,
                        "receiving-mx-hostname": mx,
                        "receiving-ip": ip,
                        "failed-session-count": n,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let report = serde_json::json!({
            "organization-name": org,
            "date-range": {
                "start-datetime": format!("{start}T00:00:00Z"),
                "end-datetime": format!("{start}T23:59:59Z"),
            },
            "contact-info": contact,
            "report-id": format!("{date}.{domain}@{org}"),
            "policies": policies,
        });
        out.push((domain, report.to_string()));
    }
    Ok(out)
}

/// The `mailto:` addresses of a domain's `_smtp._tls` TXT records (RFC 8460 §3:
/// `v=TLSRPTv1; rua=mailto:...,https://...`); https: endpoints are not used.
pub fn rua(records: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for r in records {
        let mut fields = r.split(';').map(str::trim);
        if fields.next() != Some("v=TLSRPTv1") {
            continue;
        }
        for f in fields {
            let Some(list) = f.strip_prefix("rua=") else {
                continue;
            };
            for uri in list.split(',').map(str::trim) {
                if let Some(addr) = uri.strip_prefix("mailto:") {
                    let addr = addr.split('?').next().unwrap_or("");
                    if addr.contains('@') && addr.is_ascii() && !addr.contains(['<', '>', ' ']) {
                        out.push(addr.to_string());
                    }
                }
            }
        }
    }
    out
}

/// The report mail (RFC 8460 §5.3): multipart/report with report-type tlsrpt, the JSON
/// gzip'd as `application/tlsrpt+gzip`, and `TLS-Required: No` (RFC 8689 §5: a report about
/// failing TLS must not itself wait for TLS).
pub fn message(domain: &str, submitter: &str, date: &str, json: &str, to: &[String]) -> Vec<u8> {
    use base64::Engine;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(json.as_bytes());
    let gz = gz.finish().unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD.encode(gz);
    let boundary = crate::message::mime::boundary();
    let id = crate::message::stamp::message_id(submitter);
    let mut m = String::new();
    m += &format!("From: <postmaster@{submitter}>\n");
    m += &format!(
        "To: {}\n",
        to.iter()
            .map(|a| format!("<{a}>"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    m += &format!(
        "Subject: Report Domain: {domain} Submitter: {submitter} Report-ID: <{date}.{domain}@{submitter}>\n"
    );
    m += &format!("Date: {}\n", crate::message::stamp::date_now());
    m += &format!("Message-ID: {id}\n");
    m += &format!("TLS-Report-Domain: {domain}\nTLS-Report-Submitter: {submitter}\n");
    m += "TLS-Required: No\nMIME-Version: 1.0\n";
    m += &format!(
        "Content-Type: multipart/report; report-type=\"tlsrpt\";\n boundary=\"{boundary}\"\n\n"
    );
    m += &format!("--{boundary}\nContent-Type: text/plain; charset=us-ascii\n\n");
    m += &format!("The TLS report of {submitter} for {domain}, {date} (RFC 8460).\n\n");
    m += &format!("--{boundary}\nContent-Type: application/tlsrpt+gzip\n");
    m += &format!(
        "Content-Transfer-Encoding: base64\nContent-Disposition: attachment;\n filename=\"{submitter}!{domain}!{date}.json.gz\"\n\n"
    );
    for chunk in b64.as_bytes().chunks(76) {
        m += &String::from_utf8_lossy(chunk);
        m += "\n";
    }
    m += &format!("\n--{boundary}--\n");
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rua_and_the_report_mail() {
        let txt = vec![
            "v=TLSRPTv1; rua=mailto:tls@d.test,https://r.d.test/x, mailto:b@e.test?subject=x"
                .to_string(),
            "v=spf1 -all".to_string(),
        ];
        assert_eq!(rua(&txt), ["tls@d.test", "b@e.test"]);
        assert!(rua(&["v=TLSRPTv2; rua=mailto:a@b".into()]).is_empty());
        let json = r#"{"policies":[]}"#;
        let m = message("d.test", "relay.test", "2026-12-01", json, &rua(&txt));
        let text = String::from_utf8(m.clone()).unwrap();
        assert!(text.contains("TLS-Required: No\n"), "{text}");
        assert!(text.contains("report-type=\"tlsrpt\""), "{text}");
        let parsed = mailparse::parse_mail(&m).unwrap();
        let part = &parsed.subparts[1];
        assert_eq!(part.ctype.mimetype, "application/tlsrpt+gzip");
        let gz = part.get_body_raw().unwrap();
        let mut out = String::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, json);
    }

    #[test]
    fn lines_sum_into_one_report_per_domain() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let now = 1_796_083_200; // 2026-12-01T00:00:00Z
        record(
            d,
            now,
            "A.test",
            "tlsa",
            "success",
            "mx.a.test",
            "192.0.2.1",
        )
        .unwrap();
        record(
            d,
            now + 5,
            "a.test",
            "tlsa",
            "success",
            "mx.a.test",
            "192.0.2.1",
        )
        .unwrap();
        let bad = result_type("mx.b.test: certificate not valid for mx.b.test: it names x");
        record(
            d,
            now + 9,
            "b.test",
            "sts",
            bad.unwrap(),
            "mx.b.test",
            "192.0.2.2",
        )
        .unwrap();
        record(d, now + 86400, "c.test", "sts", "success", "m", "i").unwrap();
        let r = reports(d, "2026-12-01", "relay.test", "postmaster@relay.test").unwrap();
        assert_eq!(r.len(), 2, "c.test is the next day's");
        let a: serde_json::Value = serde_json::from_str(&r[0].1).unwrap();
        assert_eq!(r[0].0, "a.test");
        let p = &a["policies"][0];
        assert_eq!(p["policy"]["policy-type"], "tlsa");
        assert_eq!(p["summary"]["total-successful-session-count"], 2);
        assert_eq!(a["date-range"]["start-datetime"], "2026-12-01T00:00:00Z");
        let b: serde_json::Value = serde_json::from_str(&r[1].1).unwrap();
        let f = &b["policies"][0]["failure-details"][0];
        assert_eq!(f["result-type"], "certificate-host-mismatch");
        assert_eq!(f["failed-session-count"], 1);
        assert!(reports(d, "12/01/2026", "o", "c").is_err());
        assert!(reports(d, "2026-11-30", "o", "c").unwrap().is_empty());
    }

    #[test]
    fn results_are_classified_and_network_failures_are_not_tls_results() {
        let t = |e| result_type(e);
        assert_eq!(
            t("server does not offer STARTTLS, and TLS is required"),
            Some("starttls-not-supported")
        );
        assert_eq!(
            t("certificate expired on 2026-01-01"),
            Some("certificate-expired")
        );
        assert_eq!(
            t("not trusted: issued by an unknown authority"),
            Some("certificate-not-trusted")
        );
        assert_eq!(
            t("matches none of the DNSSEC-signed TLSA records"),
            Some("validation-failure")
        );
        assert_eq!(t("connect 192.0.2.1:25: connection refused"), None);
    }
}
