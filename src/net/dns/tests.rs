//! The routing over a table of DNS answers: ordering, fall-backs, loops, refusals, without
//! a DNS server (tests/dns.rs asks a real one).

use super::*;
use std::cell::RefCell;
use std::collections::HashMap;

/// A DNS made of a table; what it lacks is NXDOMAIN. It remembers what was asked.
#[derive(Default)]
struct Table {
    answers: HashMap<(String, Type), Result<Answer, Failure>>,
    asked: RefCell<Vec<(String, Type)>>,
    /// Names whose answers are DNSSEC-secure (every type); the others are insecure.
    secure: Vec<String>,
    /// Questions whose validation fails.
    bogus: Vec<(String, Type)>,
}

impl Table {
    fn with_mx(mut self, name: &str, records: &[(u16, &str)]) -> Table {
        let v = records.iter().map(|(p, h)| (*p, h.to_string())).collect();
        self.answers
            .insert((name.to_string(), Type::Mx), Ok(Answer::Mx(v)));
        self
    }
    fn addr(mut self, name: &str, addr: &str) -> Table {
        let a: IpAddr = addr.parse().unwrap();
        let kind = if a.is_ipv6() { Type::Aaaa } else { Type::A };
        let entry = self
            .answers
            .entry((name.to_string(), kind))
            .or_insert(Ok(Answer::Addrs(Vec::new())));
        if let Ok(Answer::Addrs(v)) = entry {
            v.push(a);
        }
        self
    }
    fn set(mut self, name: &str, kind: Type, answer: Result<Answer, Failure>) -> Table {
        self.answers.insert((name.to_string(), kind), answer);
        self
    }
    fn servfail(self, name: &str, kind: Type) -> Table {
        self.set(
            name,
            kind,
            Err(Failure::Temporary(
                "4.4.3",
                format!("{name}: the server answered SERVFAIL"),
            )),
        )
    }
    fn signed(mut self, names: &[&str]) -> Table {
        self.secure.extend(names.iter().map(|n| n.to_string()));
        self
    }
    fn forged(mut self, name: &str, kind: Type) -> Table {
        self.bogus.push((name.to_string(), kind));
        self
    }
    fn asked(&self) -> Vec<(String, Type)> {
        self.asked.borrow().clone()
    }
}

impl Lookup for Table {
    fn query(&self, questions: &[(&str, Type)]) -> Vec<Result<Answer, Failure>> {
        questions
            .iter()
            .map(|&(name, kind)| {
                self.asked.borrow_mut().push((name.to_string(), kind));
                match self.answers.get(&(name.to_string(), kind)) {
                    Some(a) => a.clone(),
                    // A name with some record but none of this type: NODATA.
                    None if self.answers.keys().any(|(n, _)| n == name) => Ok(Answer::NoData),
                    None => Ok(Answer::NxDomain),
                }
            })
            .collect()
    }

    fn validated(&self, questions: &[(&str, Type)]) -> Vec<Result<Checked, Failure>> {
        questions
            .iter()
            .zip(self.query(questions))
            .map(|(&(name, kind), a)| {
                if self.bogus.contains(&(name.to_string(), kind)) {
                    return Ok(Checked::Bogus(format!("{name}: bogus")));
                }
                let secure = self.secure.iter().any(|n| n == name);
                a.map(|a| match secure {
                    true => Checked::Secure(a),
                    false => Checked::Insecure(a),
                })
            })
            .collect()
    }
}

fn open() -> Routing {
    Routing {
        my_names: vec!["relay.example.test".to_string()],
        allow_private: true,
    }
}

fn hosts(answer: MxAnswer) -> Vec<(u16, String)> {
    match answer {
        MxAnswer::Hosts(h) => h.into_iter().map(|m| (m.preference, m.host)).collect(),
        other => panic!("expected MX hosts, got {other:?}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn mx_hosts_sorted_by_preference() {
    let dns = Table::default().with_mx("d.test", &[(30, "c"), (10, "a"), (20, "b")]);
    assert_eq!(
        hosts(dns.mx("d.test").unwrap()),
        vec![(10, "a".into()), (20, "b".into()), (30, "c".into())]
    );
}

#[test]
fn equal_preferences_are_shuffled_and_stay_in_their_rank() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let dns = Table::default().with_mx("d.test", &[(20, "z"), (10, "a"), (10, "b"), (10, "c")]);
        let h = hosts(dns.mx("d.test").unwrap());
        assert_eq!(h[3], (20, "z".to_string()), "{h:?}");
        assert!(h[..3].iter().all(|(p, _)| *p == 10), "{h:?}");
        seen.insert(h[..3].iter().map(|(_, n)| n.clone()).collect::<String>());
    }
    // 6 orders of three; 200 draws miss one with probability < 1e-15.
    assert_eq!(seen.len(), 6, "{seen:?}");
}

#[test]
fn order_follows_the_random_keys() {
    let m = |p, h: &str| Mx {
        preference: p,
        host: h.to_string(),
    };
    let mut keys = [3u64, 1, 2, 0].into_iter();
    let got = order(
        vec![m(10, "a"), m(10, "b"), m(5, "c"), m(10, "d")],
        &mut || keys.next().unwrap(),
    );
    let names: Vec<&str> = got.iter().map(|m| m.host.as_str()).collect();
    assert_eq!(names, ["c", "d", "b", "a"]);
}

#[test]
fn nodata_falls_back_to_the_domains_addresses() {
    let dns = Table::default()
        .addr("d.test", "192.0.2.1")
        .addr("d.test", "2001:db8::1");
    assert_eq!(
        dns.mx("d.test").unwrap(),
        MxAnswer::Implicit(vec![ip("2001:db8::1"), ip("192.0.2.1")])
    );
}

#[test]
fn nodata_without_any_address_is_a_bounce() {
    let dns = Table::default().set("d.test", Type::Mx, Ok(Answer::NoData));
    let f = dns.mx("d.test").unwrap_err();
    assert_eq!(f.status(), "5.1.2", "{f:?}");
}

#[test]
fn nxdomain_is_permanent_5_1_2_and_asks_nothing_more() {
    let dns = Table::default();
    let f = dns.mx("nowhere.test").unwrap_err();
    assert_eq!(
        f,
        Failure::Permanent(
            "5.1.2",
            "domain nowhere.test does not exist (NXDOMAIN)".into()
        )
    );
    assert_eq!(dns.asked(), vec![("nowhere.test".to_string(), Type::Mx)]);
}

#[test]
fn null_mx_is_permanent_5_1_10_even_with_an_address() {
    let dns = Table::default()
        .with_mx("d.test", &[(0, "")])
        .addr("d.test", "192.0.2.1");
    let f = dns.mx("d.test").unwrap_err();
    assert!(!f.is_temporary());
    assert_eq!(f.status(), "5.1.10");
    assert_eq!(dns.asked().len(), 1, "a null MX asks for no address");
}

#[test]
fn a_root_exchange_beside_real_hosts_is_skipped() {
    let dns = Table::default().with_mx("d.test", &[(0, ""), (10, "a")]);
    assert_eq!(hosts(dns.mx("d.test").unwrap()), vec![(10, "a".into())]);
}

#[test]
fn temporary_mx_failure_never_falls_back_to_a() {
    // dma#30, postal#2833: a SERVFAIL must neither bounce nor go to the A record.
    let dns = Table::default()
        .servfail("d.test", Type::Mx)
        .addr("d.test", "192.0.2.1");
    let f = dns.targets("d.test", &open()).unwrap_err();
    assert!(f.is_temporary(), "{f:?}");
    assert_eq!(f.status(), "4.4.3");
    assert_eq!(dns.asked(), vec![("d.test".to_string(), Type::Mx)]);
}

#[test]
fn targets_give_every_address_of_every_host_in_order() {
    let dns = Table::default()
        .with_mx("d.test", &[(20, "b.d.test"), (10, "a.d.test")])
        .addr("a.d.test", "192.0.2.1")
        .addr("a.d.test", "192.0.2.2")
        .addr("a.d.test", "2001:db8::1")
        .addr("b.d.test", "192.0.2.3");
    let t = dns.targets("d.test", &open()).unwrap();
    assert_eq!(
        t,
        vec![
            Target {
                host: "a.d.test".into(),
                addrs: vec![ip("2001:db8::1"), ip("192.0.2.1"), ip("192.0.2.2")],
                preference: 10,
            },
            Target {
                host: "b.d.test".into(),
                addrs: vec![ip("192.0.2.3")],
                preference: 20,
            },
        ]
    );
}

#[test]
fn an_address_shared_by_two_hosts_is_tried_once() {
    let dns = Table::default()
        .with_mx("d.test", &[(10, "a"), (20, "b")])
        .addr("a", "192.0.2.1")
        .addr("b", "192.0.2.1")
        .addr("b", "192.0.2.2");
    let t = dns.targets("d.test", &open()).unwrap();
    assert_eq!(t[0].addrs, vec![ip("192.0.2.1")]);
    assert_eq!(t[1].addrs, vec![ip("192.0.2.2")]);
}

#[test]
fn missing_hosts_are_skipped_and_all_missing_is_a_bounce() {
    let dns = Table::default()
        .with_mx("d.test", &[(10, "gone"), (20, "b")])
        .addr("b", "192.0.2.3");
    let t = dns.targets("d.test", &open()).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].host, "b");

    let dns = Table::default().with_mx("d.test", &[(10, "gone")]);
    let f = dns.targets("d.test", &open()).unwrap_err();
    assert_eq!(f.status(), "5.4.4", "{f:?}");
    assert!(f.text().contains("gone"), "{f:?}");
}

#[test]
fn a_host_that_failed_temporarily_makes_the_whole_answer_temporary_when_alone() {
    let dns = Table::default()
        .with_mx("d.test", &[(10, "a"), (20, "gone")])
        .servfail("a", Type::A)
        .servfail("a", Type::Aaaa);
    let f = dns.targets("d.test", &open()).unwrap_err();
    assert!(
        f.is_temporary(),
        "nonexistent backup, broken primary: {f:?}"
    );
    assert!(f.text().contains("SERVFAIL"), "{f:?}");

    // A working host beside it is used.
    let dns = Table::default()
        .with_mx("d.test", &[(10, "a"), (20, "b")])
        .servfail("a", Type::A)
        .servfail("a", Type::Aaaa)
        .addr("b", "192.0.2.3");
    let t = dns.targets("d.test", &open()).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].host, "b");
}

#[test]
fn one_family_failing_keeps_the_other() {
    let dns = Table::default()
        .addr("h", "192.0.2.1")
        .servfail("h", Type::Aaaa);
    assert_eq!(dns.addresses("h").unwrap(), vec![ip("192.0.2.1")]);

    // Nothing found and one failure: temporary, not "no such host".
    let dns = Table::default()
        .set("h", Type::A, Ok(Answer::NxDomain))
        .servfail("h", Type::Aaaa);
    assert!(dns.addresses("h").unwrap_err().is_temporary());

    // Neither exists: empty, the caller skips the host.
    assert_eq!(
        Table::default().addresses("h").unwrap(),
        Vec::<IpAddr>::new()
    );
}

#[test]
fn addresses_interleave_families_ipv6_first() {
    let dns = Table::default()
        .addr("h", "192.0.2.1")
        .addr("h", "192.0.2.2")
        .addr("h", "192.0.2.3")
        .addr("h", "2001:db8::1")
        .addr("h", "2001:db8::1");
    assert_eq!(
        dns.addresses("h").unwrap(),
        vec![
            ip("2001:db8::1"),
            ip("192.0.2.1"),
            ip("192.0.2.2"),
            ip("192.0.2.3")
        ]
    );
}

#[test]
fn being_the_best_mx_is_a_loop_5_4_6() {
    let dns = Table::default()
        .with_mx("d.test", &[(10, "Relay.Example.Test."), (20, "b")])
        .addr("b", "192.0.2.3");
    let f = dns.targets("d.test", &open()).unwrap_err();
    assert_eq!(f.status(), "5.4.6", "{f:?}");
    assert!(!f.is_temporary());
    assert!(f.text().contains("loops back to myself"), "{f:?}");
}

#[test]
fn sharing_the_best_preference_is_a_loop_too() {
    // RFC 5321 §5.1 discards our record and every one not more preferred.
    let dns = Table::default()
        .with_mx("d.test", &[(10, "relay.example.test"), (10, "b")])
        .addr("b", "192.0.2.3");
    assert_eq!(
        dns.targets("d.test", &open()).unwrap_err().status(),
        "5.4.6"
    );
}

#[test]
fn a_backup_mx_tries_only_the_more_preferred_hosts() {
    let dns = Table::default()
        .with_mx(
            "d.test",
            &[(30, "c"), (20, "relay.example.test"), (10, "a"), (20, "b")],
        )
        .addr("a", "192.0.2.1")
        .addr("b", "192.0.2.2")
        .addr("c", "192.0.2.3");
    let t = dns.targets("d.test", &open()).unwrap();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].host, "a");
    assert!(
        !dns.asked().iter().any(|(n, _)| n == "b" || n == "c"),
        "less preferred hosts are not even looked up: {:?}",
        dns.asked()
    );
}

#[test]
fn a_local_address_is_not_a_loop() {
    // Judged by name only: an MX at 127.0.0.1 named otherwise is another host.
    let dns = Table::default()
        .with_mx("d.test", &[(10, "a")])
        .addr("a", "127.0.0.1");
    assert_eq!(dns.targets("d.test", &open()).unwrap()[0].host, "a");
}

#[test]
fn an_implicit_mx_named_as_this_host_is_a_loop() {
    let dns = Table::default().addr("relay.example.test", "192.0.2.1");
    let f = dns.targets("relay.example.test", &open()).unwrap_err();
    assert_eq!(f.status(), "5.4.6");
}

#[test]
fn private_targets_are_refused_unless_allowed() {
    let strict = Routing {
        my_names: vec![],
        allow_private: false,
    };
    let dns = Table::default()
        .with_mx("d.test", &[(10, "inside"), (20, "outside")])
        .addr("inside", "10.1.2.3")
        .addr("inside", "fe80::1")
        .addr("outside", "192.0.2.9");
    let t = dns.targets("d.test", &strict).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].host, "outside");

    let dns = Table::default()
        .with_mx("d.test", &[(10, "inside")])
        .addr("inside", "127.0.0.1");
    let f = dns.targets("d.test", &strict).unwrap_err();
    assert_eq!(f.status(), "5.4.4");
    assert!(f.text().contains("127.0.0.1"), "{f:?}");

    let dns = Table::default().addr("d.test", "192.168.1.1");
    assert_eq!(
        dns.targets("d.test", &strict).unwrap_err().status(),
        "5.4.4"
    );
    assert_eq!(
        dns.targets("d.test", &open()).unwrap()[0].addrs,
        vec![ip("192.168.1.1")]
    );
}

#[test]
fn address_literals() {
    let dns = Table::default();
    let t = dns.targets("[192.0.2.7]", &open()).unwrap();
    assert_eq!(t[0].addrs, vec![ip("192.0.2.7")]);
    assert_eq!(t[0].host, "[192.0.2.7]");
    let t = dns.targets("[ipv6:2001:db8::7]", &open()).unwrap();
    assert_eq!(t[0].addrs, vec![ip("2001:db8::7")]);
    assert!(dns.asked().is_empty(), "a literal needs no DNS");

    for bad in [
        "[192.0.2]",
        "[2001:db8::7]",
        "[IPv6:192.0.2.1]",
        "[x]",
        "[1.2.3.4",
    ] {
        let f = dns.targets(bad, &open()).unwrap_err();
        assert_eq!(f.status(), "5.1.3", "{bad}: {f:?}");
    }
    let strict = Routing::default();
    assert_eq!(
        dns.targets("[127.0.0.1]", &strict).unwrap_err().status(),
        "5.4.4"
    );
    assert_eq!(
        dns.targets("[IPv6:::1]", &strict).unwrap_err().status(),
        "5.4.4"
    );
    assert!(dns.targets("[127.0.0.1]", &open()).is_ok());
}

#[test]
fn private_ranges() {
    for a in [
        "0.0.0.0",
        "0.1.2.3",
        "127.0.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "169.254.1.1",
        "100.64.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fc00::1",
        "fd12::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
    ] {
        assert!(is_private(ip(a)), "{a}");
    }
    for a in [
        "192.0.2.1",
        "8.8.8.8",
        "172.32.0.1",
        "100.128.0.1",
        "2001:db8::1",
        "2a00::1",
        "::ffff:8.8.8.8",
    ] {
        assert!(!is_private(ip(a)), "{a}");
    }
}

#[test]
fn failures_become_exit_codes() {
    let e: crate::Error = Failure::Temporary("4.4.3", "x".into()).into();
    assert_eq!(e.code(), crate::Code::TempFail);
    let e: crate::Error = Failure::Permanent("5.1.2", "x".into()).into();
    assert_eq!(e.code(), crate::Code::NoHost);
}

#[test]
fn resolv_conf_nameservers() {
    let text = "# comment\nsearch example.test\nnameserver 192.0.2.53\n\
                nameserver   2001:db8::53  \nnameserver fe80::1%eth0\nnameserver bogus\n\
                ; nameserver 192.0.2.99\nnameserver 192.0.2.54\nnameserver 192.0.2.55\n";
    assert_eq!(
        resolver::nameservers(text),
        vec![ip("192.0.2.53"), ip("2001:db8::53"), ip("192.0.2.54")]
    );
}

#[test]
fn an_mx_host_that_is_no_name_counts_as_missing_not_temporary() {
    let dns = Table::default().with_mx("d.test", &[(10, "bad name")]).set(
        "bad name",
        Type::A,
        Err(Failure::Permanent(
            "5.1.3",
            "bad name is not a domain name".into(),
        )),
    );
    let f = dns.targets("d.test", &open()).unwrap_err();
    assert_eq!(f.status(), "5.4.4", "{f:?}");
}

fn tlsa(byte: u8) -> crate::net::dane::Tlsa {
    crate::net::dane::Tlsa {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![byte; 32],
    }
}

/// A signed domain with two MX hosts: one with TLSA records, one without; and the same
/// names unsigned.
fn dane_table(signed: bool) -> Table {
    let t = Table::default()
        .with_mx("d.test", &[(10, "a.d.test"), (20, "b.d.test")])
        .addr("a.d.test", "192.0.2.1")
        .addr("b.d.test", "192.0.2.2")
        .set(
            "_25._tcp.a.d.test",
            Type::Tlsa,
            Ok(Answer::Tlsa(vec![tlsa(1)])),
        );
    match signed {
        true => t.signed(&[
            "d.test",
            "a.d.test",
            "b.d.test",
            "_25._tcp.a.d.test",
            "_25._tcp.b.d.test",
        ]),
        false => t,
    }
}

#[test]
fn dane_needs_a_secure_mx_set_and_secure_hosts() {
    let t = dane_table(true);
    let targets = t.targets("d.test", &open()).unwrap();
    let d = t.dane("d.test", &targets, 25);
    assert_eq!(d.mx, Security::Secure);
    assert_eq!(d.host("a.d.test"), HostDane::Records(vec![tlsa(1)]));
    assert_eq!(d.host("b.d.test"), HostDane::NoRecords);

    // RFC 7672 §2.2.1: an unsigned MX set: no DANE, and no TLSA lookups at all.
    let t = dane_table(false);
    let targets = t.targets("d.test", &open()).unwrap();
    let d = t.dane("d.test", &targets, 25);
    assert_eq!(d.mx, Security::Insecure);
    assert_eq!(d.host("a.d.test"), HostDane::Insecure);
    assert!(!t.asked().iter().any(|(_, k)| *k == Type::Tlsa));

    // A secure MX set pointing at a host in an unsigned zone: that host has no DANE.
    let t = dane_table(false).signed(&["d.test", "_25._tcp.a.d.test"]);
    let targets = t.targets("d.test", &open()).unwrap();
    assert_eq!(
        t.dane("d.test", &targets, 25).host("a.d.test"),
        HostDane::Insecure
    );
}

#[test]
fn bogus_is_never_insecure() {
    // A forged TLSA answer, or forged addresses: the host is unusable, not DANE-free.
    let t = dane_table(true).forged("_25._tcp.a.d.test", Type::Tlsa);
    let targets = t.targets("d.test", &open()).unwrap();
    let d = t.dane("d.test", &targets, 25);
    assert!(matches!(d.host("a.d.test"), HostDane::Unusable(_)));
    assert_eq!(d.host("b.d.test"), HostDane::NoRecords);
    let t = dane_table(true).forged("b.d.test", Type::A);
    let targets = t.targets("d.test", &open()).unwrap();
    assert!(matches!(
        t.dane("d.test", &targets, 25).host("b.d.test"),
        HostDane::Unusable(_)
    ));
    // A forged MX set: every host unusable.
    let t = dane_table(true).forged("d.test", Type::Mx);
    let targets = t.targets("d.test", &open()).unwrap();
    let d = t.dane("d.test", &targets, 25);
    assert!(matches!(d.mx, Security::Bogus(_)));
    assert!(
        d.hosts
            .iter()
            .all(|(_, h)| matches!(h, HostDane::Unusable(_)))
    );
    // A TLSA lookup that fails on a secure host: unusable too (RFC 7672 §2.2.3).
    let t = dane_table(true).servfail("_25._tcp.a.d.test", Type::Tlsa);
    let targets = t.targets("d.test", &open()).unwrap();
    assert!(matches!(
        t.dane("d.test", &targets, 25).host("a.d.test"),
        HostDane::Unusable(_)
    ));
}

#[test]
fn the_ad_bit_is_believed_from_loopback_servers_only() {
    let addrs = |v: &[&str]| v.iter().map(|a| a.parse().unwrap()).collect::<Vec<_>>();
    let local = addrs(&["127.0.0.1:53", "[::1]:53"]);
    assert_eq!(resolver::validator(&local), Some(local[0]));
    // One server elsewhere: any answer may come from it, so none is believed.
    assert_eq!(
        resolver::validator(&addrs(&["127.0.0.1:53", "192.0.2.53:53"])),
        None
    );
    assert_eq!(resolver::validator(&addrs(&["192.0.2.53:53"])), None);
}
