//! net::dns against a real DNS server: dnsmasq on a loopback port (tests/peers/start-dnsmasq.sh)
//! serving MX with two preferences and an equal pair, A and AAAA, a domain without MX, a
//! null MX and NXDOMAIN; and, forwarded by it or asked directly, small UDP servers of our own
//! that answer SERVFAIL or REFUSED to everything, or never answer. Each outcome must land on
//! the right side: targets, a bounce with its status, or a temporary failure in bounded time.

use crate::common::*;
use mailpipe::net::dns::{Failure, Lookup, MxAnswer, Options, Resolver, Routing};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A UDP DNS server on 127.0.0.1 that answers every query with `rcode` and no records, or
/// (`rcode` None) reads nothing and never answers. It lives as long as the test process.
fn responder(rcode: Option<u8>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let Some(rcode) = rcode else {
            // Hold the socket open, so queries are neither answered nor refused by ICMP.
            loop {
                std::thread::sleep(Duration::from_secs(3600));
                let _ = &sock;
            }
        };
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut reply = buf[..n].to_vec();
            reply[2] = 0x80 | (buf[2] & 0x01); // QR, the query's opcode 0 and RD
            reply[3] = 0x80 | rcode; // RA, RCODE
            let _ = sock.send_to(&reply, from);
        }
    });
    addr
}

/// dnsmasq with the test's records, and the resolver options that ask it.
struct World {
    peers: Peers,
    dns: SocketAddr,
}

impl World {
    /// None when the peers are missing (outside CI) or we are not root.
    fn start() -> Option<World> {
        if !have(&["dnsmasq"]) {
            return None;
        }
        if !is_root() {
            assert!(!in_ci(), "the dnsmasq peer needs root in CI");
            eprintln!("SKIPPED: the peers need root");
            return None;
        }
        let servfail = responder(Some(2));
        let silent = responder(None);
        let peers = Peers::new();
        let records = peers.dir().join("records.conf");
        std::fs::write(
            &records,
            format!(
                "\
# two preferences, and an equal pair at the second (RFC 5321 5.1: shuffled)
mx-host=example.test,mx1.example.test,10
mx-host=example.test,mx2.example.test,20
mx-host=example.test,mx3.example.test,20
host-record=mx1.example.test,127.0.0.2,::1
host-record=mx2.example.test,127.0.0.3
host-record=mx3.example.test,127.0.0.4
# no MX, an A record: NODATA for MX, the implicit MX; and one under an IDNA name (bücher)
host-record=nomx.test,127.0.0.5
host-record=xn--bcher-kva.test,127.0.0.7
# the null MX '0 .' (RFC 7505) beside an A record that must not be used
dns-rr=nullmx.test,15,000000
host-record=nullmx.test,127.0.0.6
# this host (relay.example.test) is the best MX of loop.test, the backup of backup.test
mx-host=loop.test,relay.example.test,10
mx-host=loop.test,mx2.example.test,20
mx-host=backup.test,mx2.example.test,10
mx-host=backup.test,relay.example.test,20
mx-host=backup.test,mx3.example.test,30
host-record=relay.example.test,127.0.0.9
# an MX into a private network, a dangling MX
mx-host=inside.test,mx.inside.test,10
host-record=mx.inside.test,10.9.9.9
mx-host=dangling.test,nohost.dangling.test,10
# broken upstreams: SERVFAIL for everything under servfail.test, silence under silent.test
server=/servfail.test/{servfail}
server=/silent.test/{silent}
mx-host=half.test,mx.servfail.test,10
",
                servfail = servfail.to_string().replace(':', "#"),
                silent = silent.to_string().replace(':', "#"),
            ),
        )
        .unwrap();
        let port = free_port().to_string();
        peers.script(
            "start-dnsmasq.sh",
            &[
                peers.dir().to_str().unwrap(),
                "127.0.0.1",
                &port,
                records.to_str().unwrap(),
            ],
            &[],
        );
        let dns = format!("127.0.0.1:{port}").parse().unwrap();
        Some(World { peers, dns })
    }

    fn resolver(&self) -> Resolver {
        resolver_at(self.dns)
    }
}

fn resolver_at(server: SocketAddr) -> Resolver {
    Resolver::new(&Options {
        server: Some(server),
        timeout: Duration::from_millis(500),
        attempts: 2,
    })
    .unwrap()
}

fn me() -> Routing {
    Routing {
        my_names: vec!["relay.example.test".into()],
        allow_private: true,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn permanent(f: Failure) -> (&'static str, String) {
    assert!(!f.is_temporary(), "expected a permanent failure: {f:?}");
    (f.status(), f.text().to_string())
}

fn temporary(f: Failure) -> String {
    assert!(f.is_temporary(), "expected a temporary failure: {f:?}");
    assert_eq!(f.status(), "4.4.3", "{f:?}");
    f.text().to_string()
}

#[test]
fn mx_hosts_by_preference_equal_ones_shuffled_every_address_of_each() {
    let Some(w) = World::start() else { return };
    let r = w.resolver();
    let mut orders = std::collections::HashSet::new();
    for _ in 0..40 {
        let MxAnswer::Hosts(hosts) = r.mx("example.test").unwrap() else {
            panic!("no MX hosts for example.test");
        };
        let prefs: Vec<u16> = hosts.iter().map(|m| m.preference).collect();
        assert_eq!(prefs, [10, 20, 20]);
        assert_eq!(hosts[0].host, "mx1.example.test");
        orders.insert(hosts[1].host.clone());
    }
    assert_eq!(
        orders.len(),
        2,
        "the pair at 20 is never reordered: {orders:?}"
    );

    let t = r.targets("example.test", &me()).unwrap();
    assert_eq!(t.len(), 3, "{t:?}");
    assert_eq!(t[0].host, "mx1.example.test");
    assert_eq!(
        t[0].addrs,
        vec![ip("::1"), ip("127.0.0.2")],
        "AAAA and A, IPv6 first"
    );
    assert_eq!(t[0].preference, 10);
    let mut rest: Vec<(String, Vec<IpAddr>)> = t[1..]
        .iter()
        .map(|t| (t.host.clone(), t.addrs.clone()))
        .collect();
    rest.sort();
    assert_eq!(
        rest,
        vec![
            ("mx2.example.test".to_string(), vec![ip("127.0.0.3")]),
            ("mx3.example.test".to_string(), vec![ip("127.0.0.4")]),
        ]
    );
    assert_eq!(
        r.addresses("MX1.Example.Test").unwrap(),
        vec![ip("::1"), ip("127.0.0.2")]
    );
    assert_eq!(
        r.addresses("nothere.example.test").unwrap(),
        Vec::<IpAddr>::new()
    );
}

#[test]
fn no_mx_means_the_domains_own_address() {
    let Some(w) = World::start() else { return };
    let r = w.resolver();
    assert_eq!(
        r.mx("nomx.test").unwrap(),
        MxAnswer::Implicit(vec![ip("127.0.0.5")])
    );
    let t = r.targets("nomx.test", &me()).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].host.as_str(), t[0].addrs.clone(), t[0].preference),
        ("nomx.test", vec![ip("127.0.0.5")], 0)
    );
    // A U-label domain (SMTPUTF8 mail) is asked as its A-label (RFC 5890).
    assert_eq!(
        r.mx("bücher.test").unwrap(),
        MxAnswer::Implicit(vec![ip("127.0.0.7")])
    );
}

#[test]
fn null_mx_and_nxdomain_are_bounces() {
    let Some(w) = World::start() else { return };
    let r = w.resolver();
    let (status, text) = permanent(r.targets("nullmx.test", &me()).unwrap_err());
    assert_eq!(status, "5.1.10");
    assert!(text.contains("null MX"), "{text}");
    let (status, text) = permanent(r.targets("nowhere.test", &me()).unwrap_err());
    assert_eq!(status, "5.1.2");
    assert!(text.contains("NXDOMAIN"), "{text}");
    let (status, _) = permanent(r.targets("dangling.test", &me()).unwrap_err());
    assert_eq!(status, "5.4.4");
    // Not a domain name at all (a label over 63 octets, RFC 1035 §2.3.4): no query, a bounce.
    let long = format!("{}.test", "a".repeat(64));
    let (status, _) = permanent(r.targets(&long, &me()).unwrap_err());
    assert_eq!(status, "5.1.3");
}

#[test]
fn servfail_is_temporary_and_never_falls_back() {
    let Some(w) = World::start() else { return };
    let r = w.resolver();
    let start = Instant::now();
    let text = temporary(r.mx("servfail.test").unwrap_err());
    assert!(text.contains("SERVFAIL"), "{text}");
    // The MX exists but its host's lookup fails: temporary too, not "host not found".
    let text = temporary(r.targets("half.test", &me()).unwrap_err());
    assert!(text.contains("mx.servfail.test"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_silent_upstream_is_a_timeout_in_bounded_time() {
    let Some(w) = World::start() else { return };
    let r = w.resolver();
    let start = Instant::now();
    let text = temporary(r.targets("silent.test", &me()).unwrap_err());
    let took = start.elapsed();
    assert!(text.contains("timed out"), "{text}");
    // 500 ms, 2 tries; the module's own deadline adds 1 s at most.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn loops_to_this_host_are_judged_by_name() {
    let Some(w) = World::start() else { return };
    let r = w.resolver();
    let (status, text) = permanent(r.targets("loop.test", &me()).unwrap_err());
    assert_eq!(status, "5.4.6");
    assert!(text.contains("loops back to myself"), "{text}");
    // As a backup MX (preference 20): only the preference-10 host, never the 30 one.
    let t = r.targets("backup.test", &me()).unwrap();
    let hosts: Vec<&str> = t.iter().map(|t| t.host.as_str()).collect();
    assert_eq!(hosts, ["mx2.example.test"]);
    // Another host (not named relay.example.test) delivers to it, loopback address or not.
    let t = r
        .targets(
            "loop.test",
            &Routing {
                my_names: vec![],
                allow_private: true,
            },
        )
        .unwrap();
    assert_eq!(t[0].host, "relay.example.test");
    assert_eq!(t[0].addrs, vec![ip("127.0.0.9")]);
}

#[test]
fn private_targets_need_allowing() {
    let Some(w) = World::start() else { return };
    let r = w.resolver();
    let strict = Routing {
        my_names: vec![],
        allow_private: false,
    };
    let (status, text) = permanent(r.targets("inside.test", &strict).unwrap_err());
    assert_eq!(status, "5.4.4");
    assert!(text.contains("10.9.9.9"), "{text}");
    let (status, _) = permanent(r.targets("example.test", &strict).unwrap_err());
    assert_eq!(status, "5.4.4", "loopback MX hosts");
    let (status, _) = permanent(r.targets("[127.0.0.1]", &strict).unwrap_err());
    assert_eq!(status, "5.4.4");
    assert_eq!(
        r.targets("inside.test", &me()).unwrap()[0].addrs,
        vec![ip("10.9.9.9")]
    );
}

#[test]
fn servers_that_refuse_or_never_answer_are_temporary() {
    // No dnsmasq needed: the resolver asks our responders directly.
    let refused = resolver_at(responder(Some(5)));
    let text = temporary(refused.mx("example.test").unwrap_err());
    assert!(text.contains("REFUSED"), "{text}");
    let servfail = resolver_at(responder(Some(2)));
    temporary(servfail.targets("example.test", &me()).unwrap_err());

    let silent = resolver_at(responder(None));
    let start = Instant::now();
    let text = temporary(silent.targets("example.test", &me()).unwrap_err());
    assert!(text.contains("timed out"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // Nothing listening at all (ICMP port unreachable): temporary as well.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let start = Instant::now();
    temporary(resolver_at(closed).mx("example.test").unwrap_err());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn one_resolver_serves_threads_at_once() {
    let Some(w) = World::start() else { return };
    let r = w.resolver();
    // One thread waits on the silent upstream; the others are answered meanwhile, each
    // within a fraction of that wait.
    std::thread::scope(|s| {
        let slow = s.spawn(|| r.mx("silent.test"));
        let fast: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let start = Instant::now();
                    for _ in 0..5 {
                        assert_eq!(r.targets("example.test", &me()).unwrap().len(), 3);
                    }
                    start.elapsed()
                })
            })
            .collect();
        for f in fast {
            let took = f.join().unwrap();
            assert!(took < Duration::from_millis(700), "{took:?}");
        }
        temporary(slow.join().unwrap().unwrap_err());
    });
    drop(w.peers);
}
