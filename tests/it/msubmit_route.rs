//! How msubmit's connection leaves this host, msmtp's keys for it: `source_ip` (the local
//! address it is bound to) and `proxy_host`/`proxy_port` (through a SOCKS5 proxy that
//! resolves the server's name: an in-test proxy that records what it was asked, and the
//! real microsocks where it is installed).

use crate::common;
use crate::common::smtp;

use common::*;
use smtp::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn config(home: &Path, text: &str) {
    write(&home.join(".config/mailpipe/config"), text);
}

fn send(home: &Path) -> Output {
    run(
        tool(bin!("msubmit"), home).args(["--timeout", "10", "-f", "a@a.test", "b@b.test"]),
        b"Subject: route\n\nx\n",
    )
}

#[test]
fn source_ip_binds_the_connection_to_a_local_address() {
    let fake = Fake::start(Script::default());
    let t = tempfile::tempdir().unwrap();
    let server = format!("host 127.0.0.1\nport {}\ntls off\n", fake.port());
    config(t.path(), &format!("{server}source_ip 127.0.0.2\n"));
    let out = send(t.path());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Without source_ip the system chooses 127.0.0.1 for 127.0.0.1.
    config(t.path(), &server);
    assert_eq!(code(&send(t.path())), 0);
    let ips: Vec<String> = fake
        .peers
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.ip().to_string())
        .collect();
    assert_eq!(ips, ["127.0.0.2", "127.0.0.1"]);
    // The flag overrides the key; an address this host does not have is the setting's
    // fault (78), not the network's (75, retried for ever).
    config(t.path(), &format!("{server}source_ip 127.0.0.2\n"));
    let out = run(
        tool(bin!("msubmit"), t.path()).args([
            "--source-ip",
            "127.0.0.3",
            "-f",
            "a@a.test",
            "b@b.test",
        ]),
        b"x\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fake.peers.lock().unwrap()[2].ip().to_string(), "127.0.0.3");
    config(t.path(), &format!("{server}source_ip 192.0.2.7\n"));
    let out = send(t.path());
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("source_ip 192.0.2.7: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.messages().len(), 3);
}

/// What the in-test proxy was asked.
#[derive(Debug, Default)]
struct Asked {
    /// The authentication methods the client offered.
    methods: Vec<u8>,
    /// The user name and password it logged in with.
    login: Option<(String, String)>,
    /// The address type and the address of its CONNECT request.
    atyp: u8,
    host: String,
    port: u16,
}

/// A SOCKS5 proxy on 127.0.0.1 (RFC 1928, RFC 1929) that connects every request, whatever
/// the name, to `to`, asks for a login when `login` is given, and records each request.
fn proxy(
    to: SocketAddr,
    login: Option<(&'static str, &'static str)>,
) -> (u16, Arc<Mutex<Vec<Asked>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let a = asked.clone();
    std::thread::spawn(move || {
        for c in listener.incoming().flatten() {
            let a = a.clone();
            std::thread::spawn(move || {
                let _ = serve_socks(c, to, login, &a);
            });
        }
    });
    (port, asked)
}

fn serve_socks(
    mut c: TcpStream,
    to: SocketAddr,
    login: Option<(&str, &str)>,
    asked: &Mutex<Vec<Asked>>,
) -> std::io::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut ask = Asked::default();
    let mut b = [0u8; 2];
    c.read_exact(&mut b)?;
    ask.methods = vec![0; usize::from(b[1])];
    c.read_exact(&mut ask.methods)?;
    match login {
        None => c.write_all(&[5, 0])?,
        Some(_) if !ask.methods.contains(&2) => {
            asked.lock().unwrap().push(ask);
            return c.write_all(&[5, 0xFF]);
        }
        Some((user, password)) => {
            c.write_all(&[5, 2])?;
            let field = |c: &mut TcpStream| -> std::io::Result<String> {
                let mut n = [0u8; 1];
                c.read_exact(&mut n)?;
                let mut v = vec![0; usize::from(n[0])];
                c.read_exact(&mut v)?;
                Ok(String::from_utf8_lossy(&v).into_owned())
            };
            c.read_exact(&mut [0u8; 1])?;
            let (u, p) = (field(&mut c)?, field(&mut c)?);
            let ok = u == user && p == password;
            ask.login = Some((u, p));
            c.write_all(&[1, if ok { 0 } else { 1 }])?;
            if !ok {
                asked.lock().unwrap().push(ask);
                return Ok(());
            }
        }
    }
    let mut head = [0u8; 4];
    c.read_exact(&mut head)?;
    ask.atyp = head[3];
    ask.host = match head[3] {
        1 => {
            let mut a = [0u8; 4];
            c.read_exact(&mut a)?;
            std::net::Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut n = [0u8; 1];
            c.read_exact(&mut n)?;
            let mut v = vec![0; usize::from(n[0])];
            c.read_exact(&mut v)?;
            String::from_utf8_lossy(&v).into_owned()
        }
        _ => String::new(),
    };
    let mut p = [0u8; 2];
    c.read_exact(&mut p)?;
    ask.port = u16::from_be_bytes(p);
    asked.lock().unwrap().push(ask);
    let server = TcpStream::connect(to)?;
    c.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])?;
    c.set_read_timeout(None)?;
    let (mut c2, mut s2) = (c.try_clone()?, server.try_clone()?);
    let (mut c, mut server) = (c, server);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut c);
    let _ = c.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
    Ok(())
}

#[test]
fn a_socks5_proxy_carries_the_connection_and_resolves_the_name() {
    let fake = Fake::start(Script::default());
    let (port, asked) = proxy(fake.addr, None);
    let t = tempfile::tempdir().unwrap();
    // A name this host cannot resolve: only the proxy knows where it is.
    config(
        t.path(),
        &format!(
            "host mail.example.invalid\nport 2525\ntls off\nproxy_host 127.0.0.1\nproxy_port {port}\n"
        ),
    );
    let out = send(t.path());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fake.messages().len(), 1);
    let a = asked.lock().unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].methods, [0], "no login offered without one");
    assert_eq!(
        (a[0].atyp, a[0].host.as_str(), a[0].port),
        (3, "mail.example.invalid", 2525)
    );
    drop(a);
    // An empty --proxy-host goes direct: the name does not resolve here (75).
    let out = run(
        tool(bin!("msubmit"), t.path()).args(["--proxy-host", "", "-f", "a@a.test", "b@b.test"]),
        b"x\n",
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resolve mail.example.invalid"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_proxy_login_is_offered_and_a_refused_one_is_a_configuration_error() {
    let fake = Fake::start(Script::default());
    let (port, asked) = proxy(fake.addr, Some(("me", "s3cret")));
    let t = tempfile::tempdir().unwrap();
    let base = format!(
        "host mail.example.invalid\nport 25\ntls off\nproxy_host 127.0.0.1\nproxy_port {port}\n"
    );
    config(
        t.path(),
        &format!("{base}proxy_user me\nproxy_password s3cret\n"),
    );
    let out = send(t.path());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    config(
        t.path(),
        &format!("{base}proxy_user me\nproxy_password wrong\n"),
    );
    let out = send(t.path());
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "proxy 127.0.0.1:{port}: refused the user name and password"
        )),
        "{}",
        stderr(&out)
    );
    // A proxy that wants a login from a client that has none.
    config(t.path(), &base);
    let out = send(t.path());
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("set proxy_user and proxy_password"),
        "{}",
        stderr(&out)
    );
    let a = asked.lock().unwrap();
    assert_eq!(a[0].methods, [0, 2]);
    assert_eq!(a[0].login, Some(("me".into(), "s3cret".into())));
    assert_eq!(a[1].login, Some(("me".into(), "wrong".into())));
    assert_eq!(a[2].methods, [0]);
    assert_eq!(fake.messages().len(), 1);
    // Nobody at the proxy's port: temporary.
    config(t.path(), &format!("{base}proxy_port {}\n", free_port()));
    let out = send(t.path());
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("proxy: connect to 127.0.0.1:"),
        "{}",
        stderr(&out)
    );
}

/// The same through a real SOCKS5 server, microsocks (Debian's package), with its login.
#[test]
fn through_microsocks() {
    if !have(&["microsocks"]) {
        return;
    }
    let fake = Fake::start(Script::default());
    let port = free_port();
    let mut proxy = std::process::Command::new("microsocks")
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            "me",
            "-P",
            "s3cret",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = wait_until(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let t = tempfile::tempdir().unwrap();
    // `localhost` is resolved by microsocks.
    config(
        t.path(),
        &format!(
            "host localhost\nport {}\ntls off\nproxy_host 127.0.0.1\nproxy_port {port}\n\
             proxy_user me\nproxy_password s3cret\n",
            fake.port()
        ),
    );
    let out = send(t.path());
    let wrong = {
        config(
            t.path(),
            &format!(
                "host localhost\nport {}\ntls off\nproxy_host 127.0.0.1\nproxy_port {port}\n\
                 proxy_user me\nproxy_password nope\n",
                fake.port()
            ),
        );
        send(t.path())
    };
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert!(up, "microsocks did not listen");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fake.messages().len(), 1);
    assert_eq!(code(&wrong), 78, "{}", stderr(&wrong));
}
