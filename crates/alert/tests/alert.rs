#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Alerts from a real store to a local webhook receiver and a local SMTP sink started here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hedgerow_alert::Alerter;
use hedgerow_config::{AlertsConfig, EmailConfig, SmtpTls, WebhookConfig};
use hedgerow_model::{AccessEvent, Action, Category, Clock, Front, Outcome, Severity, Tier};
use hedgerow_store::{DeliveryState, Store, StoreOptions};
use hedgerow_testkit::Webhook;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

struct TestClock(Mutex<jiff::Timestamp>);

impl Clock for TestClock {
    fn now(&self) -> jiff::Timestamp {
        *self.0.lock().unwrap()
    }
}

impl TestClock {
    fn advance(&self, secs: i64) {
        let mut t = self.0.lock().unwrap();
        *t += jiff::SignedDuration::from_secs(secs);
    }
}

/// A minimal SMTP server that accepts every message and keeps its DATA.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let kept = mails.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut r = BufReader::new(read);
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap() == 0 {
                        return;
                    }
                    let cmd = line.to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("DATA") {
                        write.write_all(b"354 go on\r\n").await.unwrap();
                        let mut data = String::new();
                        loop {
                            line.clear();
                            r.read_line(&mut line).await.unwrap();
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(&line);
                        }
                        kept.lock().unwrap().push(data);
                        b"250 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, mails)
}

fn breach_event(t: jiff::Timestamp, site: &str, category: &str) -> AccessEvent {
    let mut e = AccessEvent::new(
        t,
        Front::Proxy,
        "10.0.0.4".parse().unwrap(),
        format!("http://{site}/x"),
    );
    e.device = Some("lab-pc-04".into());
    e.group = Some("ks3".into());
    e.action = Action::Block;
    e.outcome = Outcome::Blocked;
    e.tier = Tier::Category;
    e.category = Some(Category::new(category).unwrap());
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_breaches_go_out_at_once_with_retries_and_the_rest_in_a_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), &StoreOptions::default()).unwrap());
    let webhook = Webhook::start(2);
    let (port, mails) = smtp_sink().await;
    let t0: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
    let clock = Arc::new(TestClock(Mutex::new(t0)));
    let config = AlertsConfig {
        immediate: Severity::High,
        digest_every: Duration::from_secs(7 * 86_400),
        attempts: 5,
        webhook: Some(WebhookConfig {
            url: webhook.url.clone(),
        }),
        email: Some(EmailConfig {
            server: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            from: "hedgerow@school.example".into(),
            to: vec!["dsl@school.example".into()],
            username: None,
            password_file: None,
        }),
    };
    let alerter = Alerter::new(store.clone(), config, clock.clone());
    alerter.pass().await.unwrap(); // starts the digest clock

    let w = Duration::from_secs(3600);
    let high = store
        .record_breach(
            &breach_event(t0, "extreme.example", "extremism"),
            Severity::High,
            "extremism",
            w,
        )
        .unwrap();
    let low = store
        .record_breach(
            &breach_event(t0, "bet.example", "gambling"),
            Severity::Low,
            "gambling",
            w,
        )
        .unwrap();

    // First pass: e-mail goes, the webhook answers 500.
    alerter.pass().await.unwrap();
    let b = store.breach(high.id).unwrap();
    assert_eq!(b.delivery("email").unwrap().state, DeliveryState::Sent);
    let hook = b.delivery("webhook").unwrap();
    assert_eq!((hook.state, hook.attempts), (DeliveryState::Retrying, 1));
    assert!(hook.last_error.as_deref().unwrap().contains("500"));
    assert_eq!(
        store.pending_alerts().unwrap().len(),
        1,
        "the low one waits for the digest"
    );

    // Before the backoff is over nothing is tried.
    alerter.pass().await.unwrap();
    assert_eq!(
        store
            .breach(high.id)
            .unwrap()
            .delivery("webhook")
            .unwrap()
            .attempts,
        1
    );
    clock.advance(1);
    alerter.pass().await.unwrap(); // second failure
    clock.advance(2);
    alerter.pass().await.unwrap(); // third attempt succeeds
    let hook = store
        .breach(high.id)
        .unwrap()
        .delivery("webhook")
        .cloned()
        .unwrap();
    assert_eq!((hook.state, hook.attempts), (DeliveryState::Sent, 3));
    assert!(store.pending_alerts().unwrap().is_empty());
    {
        let hooks = webhook.json();
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0]["kind"], "breach");
        assert_eq!(hooks[0]["breach"]["device"], "lab-pc-04");
        assert_eq!(hooks[0]["breach"]["severity"], "high");
        assert_eq!(hooks[0]["breach"]["site"], "extreme.example");
    }
    {
        let mails = mails.lock().unwrap();
        assert_eq!(mails.len(), 1);
        assert!(
            mails[0].contains(&format!("HIGH breach {}: lab-pc-04", high.id)),
            "{}",
            mails[0]
        );
        assert!(mails[0].contains("extreme.example"));
        assert!(mails[0].contains("dsl@school.example"));
    }

    // A week later the digest carries the low one.
    clock.advance(7 * 86_400);
    alerter.pass().await.unwrap();
    let hooks = webhook.json();
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[1]["kind"], "digest");
    assert_eq!(hooks[1]["breaches"][0]["site"], "bet.example");
    assert_eq!(hooks[1]["breaches"].as_array().unwrap().len(), 1);
    assert_eq!(mails.lock().unwrap().len(), 2);
    let b = store.breach(low.id).unwrap();
    assert_eq!(b.delivery("digest").unwrap().state, DeliveryState::Sent);
}

#[tokio::test]
async fn an_unreachable_webhook_fails_after_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), &StoreOptions::default()).unwrap());
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t0: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
    let clock = Arc::new(TestClock(Mutex::new(t0)));
    let config = AlertsConfig {
        immediate: Severity::High,
        digest_every: Duration::from_secs(86_400),
        attempts: 3,
        webhook: Some(WebhookConfig {
            url: format!("http://127.0.0.1:{port}/hook"),
        }),
        email: None,
    };
    let alerter = Alerter::new(store.clone(), config, clock.clone());
    let b = store
        .record_breach(
            &breach_event(t0, "x.example", "extremism"),
            Severity::Critical,
            "extremism",
            Duration::from_secs(60),
        )
        .unwrap();
    for _ in 0..6 {
        alerter.pass().await.unwrap();
        clock.advance(60);
    }
    let d = store
        .breach(b.id)
        .unwrap()
        .delivery("webhook")
        .cloned()
        .unwrap();
    assert_eq!((d.state, d.attempts), (DeliveryState::Failed, 3));
    assert!(store.pending_alerts().unwrap().is_empty());
}

fn search_event(t: jiff::Timestamp, terms: &str, concern: Severity) -> AccessEvent {
    let mut e = AccessEvent::new(
        t,
        Front::Proxy,
        "10.0.0.4".parse().unwrap(),
        format!(
            "https://www.google.com/search?q={}",
            terms.replace(' ', "+")
        ),
    );
    e.device = Some("lab-pc-04".into());
    e.user = Some("pupil7".into());
    e.group = Some("ks3".into());
    e.search = Some(terms.into());
    e.concern = Some(concern);
    e
}

/// The e-mail text as a person reads it: quoted-printable soft breaks undone.
fn unfold(mail: &str) -> String {
    mail.replace("=\r\n", "").replace("=3D", "=")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_alerts_carry_every_trigger_and_a_more_severe_one_alerts_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), &StoreOptions::default()).unwrap());
    let webhook = Webhook::start(0);
    let (port, mails) = smtp_sink().await;
    let t0: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
    let clock = Arc::new(TestClock(Mutex::new(t0)));
    let config = AlertsConfig {
        immediate: Severity::High,
        digest_every: Duration::from_secs(7 * 86_400),
        attempts: 5,
        webhook: Some(WebhookConfig {
            url: webhook.url.clone(),
        }),
        email: Some(EmailConfig {
            server: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            from: "hedgerow@school.example".into(),
            to: vec!["dsl@school.example".into()],
            username: None,
            password_file: None,
        }),
    };
    let tz = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
    let alerter = Alerter::new(store.clone(), config, clock.clone()).with_time_zone(tz);
    alerter.pass().await.unwrap();
    let w = Duration::from_secs(3600);
    let at = |s: i64| t0 + jiff::SignedDuration::from_secs(s);
    let rec = |s: i64, terms: &str, sev: Severity, rule: &str| {
        store
            .record_breach(&search_event(at(s), terms, sev), sev, rule, w)
            .unwrap()
    };

    let first = rec(0, "how to kill myself", Severity::High, "concerning search");
    assert_eq!(first.id, 1);
    alerter.pass().await.unwrap();
    assert_eq!(webhook.json().len(), 1);
    // Same severity: kept on the breach, no new alert.
    rec(20, "want to die", Severity::High, "concerning search");
    alerter.pass().await.unwrap();
    assert_eq!(webhook.json().len(), 1, "{:?}", webhook.json());
    assert_eq!(mails.lock().unwrap().len(), 1);
    // More severe: alerted again at once, with every trigger, under the same id.
    let raised = rec(
        40,
        "suicide methods",
        Severity::Critical,
        "self-harm methods",
    );
    assert_eq!((raised.id, raised.severity), (1, Severity::Critical));
    alerter.pass().await.unwrap();
    let hooks = webhook.json();
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0]["breach"]["triggers"].as_array().unwrap().len(), 1);
    let b = &hooks[1]["breach"];
    assert_eq!(b["id"], 1);
    assert_eq!(b["severity"], "critical");
    assert_eq!(b["raised"], true);
    let searches: Vec<&str> = b["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["search"].as_str().unwrap())
        .collect();
    assert_eq!(
        searches,
        ["how to kill myself", "want to die", "suicide methods"]
    );
    assert_eq!(b["triggers"][1]["time"], "2026-11-23T15:30:20+05:30");
    assert_eq!(b["triggers"][2]["user"], "pupil7");
    assert_eq!(b["triggers"][2]["device"], "lab-pc-04");
    let text = hooks[1]["text"].as_str().unwrap();
    assert!(
        text.contains("CRITICAL breach 1 (raised from HIGH)")
            && text.contains("2026-11-23 15:30:00 IST"),
        "{text}"
    );
    let mails = mails.lock().unwrap();
    assert_eq!(mails.len(), 2);
    let mail = unfold(&mails[1]);
    for needle in [
        "searched \"how to kill myself\"",
        "searched \"want to die\"",
        "searched \"suicide methods\"",
        "2026-11-23 15:30:40 IST",
        "user pupil7",
        "hedgerow breaches show 1",
    ] {
        assert!(mail.contains(needle), "{needle:?} in:\n{mail}");
    }
    let stored = store.breach(1).unwrap();
    assert_eq!(
        stored.delivery("webhook").unwrap().state,
        DeliveryState::Sent
    );
    assert_eq!(
        stored.deliveries.len(),
        4,
        "both channels at both severities"
    );
    assert!(store.pending_alerts().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_moves_to_a_new_webhook_and_stops_when_alerts_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), &StoreOptions::default()).unwrap());
    let (first, second) = (Webhook::start(0), Webhook::start(0));
    let t0: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
    let clock = Arc::new(TestClock(Mutex::new(t0)));
    let config = |url: &str| AlertsConfig {
        immediate: Severity::High,
        digest_every: Duration::from_secs(7 * 86_400),
        attempts: 5,
        webhook: Some(WebhookConfig { url: url.into() }),
        email: None,
    };
    let breach = |site: &str| {
        store
            .record_breach(
                &breach_event(t0, site, "extremism"),
                Severity::High,
                "extremism",
                Duration::from_secs(3600),
            )
            .unwrap()
            .id
    };
    let sent_to = |hook: &Webhook, site: &str| {
        hook.json()
            .iter()
            .any(|b| b["breach"]["site"].as_str() == Some(site))
    };
    let wait = |what: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !what() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        what()
    };
    let poll = Duration::from_millis(20);
    let mut service = hedgerow_alert::AlertService::start(
        store.clone(),
        clock.clone(),
        poll,
        Some(config(&first.url)),
        jiff::tz::TimeZone::UTC,
    );
    breach("one.example");
    assert!(tokio::task::block_in_place(|| wait(&|| sent_to(
        &first,
        "one.example"
    ))));
    assert!(
        !service.apply(Some(&config(&first.url)), &jiff::tz::TimeZone::UTC),
        "unchanged"
    );
    assert!(service.apply(Some(&config(&second.url)), &jiff::tz::TimeZone::UTC));
    breach("two.example");
    assert!(tokio::task::block_in_place(|| wait(&|| sent_to(
        &second,
        "two.example"
    ))));
    assert!(!sent_to(&first, "two.example"));
    assert_eq!(first.json().len(), 1);

    // Without [alerts] nothing is sent; the breach waits in the store for a later alerter.
    assert!(service.apply(None, &jiff::tz::TimeZone::UTC));
    let three = breach("three.example");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sent_to(&second, "three.example") && !sent_to(&first, "three.example"));
    assert!(
        store
            .pending_alerts()
            .unwrap()
            .iter()
            .any(|b| b.id == three)
    );
    assert!(service.apply(Some(&config(&second.url)), &jiff::tz::TimeZone::UTC));
    assert!(tokio::task::block_in_place(|| wait(&|| sent_to(
        &second,
        "three.example"
    ))));
    service.abort();
}
