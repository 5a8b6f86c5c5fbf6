//! Syslog over TLS (RFC 5425) through the public API: the shipper, given events as the
//! recorder's tap, connects to a TLS receiver that presents a certificate from a test CA,
//! checks it, and sends octet-counted RFC 5424 messages; a receiver whose certificate the
//! shipper does not trust gets nothing, and the failure is counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hedgerow_config::{ShipConfig, SyslogConfig};
use hedgerow_model::{AccessEvent, Front, Tier};
use hedgerow_ship::Shipper;
use hedgerow_store::Tap;
use hedgerow_testkit::TestCa;
use tokio::io::AsyncReadExt;

/// A TLS receiver on loopback: every octet-counted message it reads, in order.
async fn receiver(ca: &TestCa) -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config(&["localhost"]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let messages = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let messages = messages.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = tls.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // Octet counting: LENGTH SP MESSAGE, repeated.
                    while let Some(sp) = buf.iter().position(|b| *b == b' ') {
                        let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                        if buf.len() < sp + 1 + len {
                            break;
                        }
                        let msg = String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap();
                        messages.lock().unwrap().push(msg);
                        buf.drain(..sp + 1 + len);
                    }
                }
            });
        }
    });
    (addr, got)
}

fn config(addr: std::net::SocketAddr, ca_file: &std::path::Path) -> ShipConfig {
    ShipConfig {
        appliance: Some("st-marys".into()),
        queue: 64,
        clickhouse: None,
        syslog: Some(SyslogConfig {
            address: addr.to_string(),
            tls: true,
            ca_file: Some(ca_file.to_owned()),
            server_name: Some("localhost".into()),
            facility: 16,
            attempts: 2,
        }),
    }
}

fn events() -> (AccessEvent, AccessEvent) {
    let now = jiff::Timestamp::now();
    let allowed = AccessEvent::new(
        now,
        Front::Dns,
        "10.0.0.7".parse().unwrap(),
        "allowed.example".into(),
    );
    // As the recorder hands it over: an illegal-tier hit already protected.
    let mut illegal = AccessEvent::new(
        now,
        Front::Dns,
        "10.0.0.7".parse().unwrap(),
        "listed.invalid".into(),
    );
    illegal.tier = Tier::Illegal;
    illegal.protect();
    (allowed, illegal)
}

#[tokio::test]
async fn messages_arrive_over_tls_checked_against_the_trusts_ca() {
    let ca = TestCa::new("trust CA");
    let (addr, got) = receiver(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let shipper = Shipper::start(&config(addr, &ca_file)).unwrap();
    let (allowed, illegal) = events();
    shipper.access(allowed);
    shipper.access(illegal);
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let messages = got.lock().unwrap().clone();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].starts_with("<134>1 "), "{}", messages[0]);
    assert!(messages[0].contains(" st-marys hedgerow "));
    assert!(messages[0].contains(r#"target="allowed.example""#));
    assert!(
        messages[1].contains(r#"target="[protected entry\]"#),
        "{}",
        messages[1]
    );
    assert!(!messages.iter().any(|m| m.contains("listed.invalid")));
    shipper.stop(Duration::from_secs(2)).await;
    let stats = shipper.stats().syslog.unwrap();
    assert_eq!((stats.sent, stats.dropped, stats.failed), (2, 0, 0));
}

#[tokio::test]
async fn a_receiver_with_an_untrusted_certificate_gets_nothing() {
    let ca = TestCa::new("trust CA");
    let impostor = TestCa::new("someone else");
    let (addr, got) = receiver(&impostor).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let shipper = Shipper::start(&config(addr, &ca_file)).unwrap();
    let (allowed, _) = events();
    shipper.access(allowed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while shipper.stats().syslog.unwrap().failed == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = shipper.stats().syslog.unwrap();
    assert_eq!((stats.sent, stats.failed), (0, 1), "{stats:?}");
    assert_eq!(stats.errors, 2, "both attempts failed the handshake");
    assert!(got.lock().unwrap().is_empty());
}
