//! The channels: a JSON POST to a webhook, and e-mail over SMTP.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use hedgerow_config::{EmailConfig, SmtpTls};
use hedgerow_store::{Breach, Trigger};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::severity_word;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("webhook url: {0}")]
    Url(String),
    #[error("webhook: {0}")]
    Io(#[from] std::io::Error),
    #[error("webhook: {0}")]
    Http(#[from] hyper::Error),
    #[error("webhook answered {0}")]
    Status(u16),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("e-mail: {0}")]
    Email(String),
}

/// A time as people read it: in the school's time zone, to the second, with the zone
/// (`2026-11-23 10:04:05 GMT`).
pub fn local_time(t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// A time for machines: RFC 3339 with the school's offset (`2026-11-23T10:04:05+00:00`).
fn machine_time(t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// The webhook body: the breach, or a digest of several. Times are RFC 3339 with the
/// school's offset; `text` is for people, in the school's time zone.
pub(crate) fn payload(
    breach: &Breach,
    digest: &[Breach],
    tz: &jiff::tz::TimeZone,
) -> serde_json::Value {
    let trigger = |t: &Trigger| {
        serde_json::json!({
            "time": machine_time(t.time, tz),
            "last": machine_time(t.last, tz),
            "count": t.count,
            "severity": t.severity,
            "rule": t.rule,
            "front": t.front,
            "client": t.client.to_string(),
            "device": t.device,
            "user": t.user,
            "target": t.target,
            "search": t.search,
            "tier": t.tier,
            "category": t.category,
            "reference": t.reference.map(|r| format!("{r:016x}")),
        })
    };
    let one = |b: &Breach| {
        serde_json::json!({
            "id": b.id,
            "severity": b.severity,
            "raised": b.raised(),
            "rule": b.rule,
            "first": machine_time(b.first, tz),
            "last": machine_time(b.last, tz),
            "count": b.count,
            "front": b.front,
            "client": b.client.to_string(),
            "device": b.device,
            "user": b.user,
            "group": b.group,
            "site": b.site,
            "target": b.target,
            "tier": b.tier,
            "category": b.category,
            "search": b.search,
            "reference": b.reference.map(|r| format!("{r:016x}")),
            "triggers": b.triggers.iter().map(trigger).collect::<Vec<_>>(),
        })
    };
    if digest.is_empty() {
        serde_json::json!({
            "kind": "breach",
            "text": summary(breach, tz),
            "breach": one(breach),
        })
    } else {
        serde_json::json!({
            "kind": "digest",
            "text": format!("Hedgerow digest: {} breaches", digest.len()),
            "breaches": digest.iter().map(one).collect::<Vec<_>>(),
        })
    }
}

/// One line: severity, id, who, where, what and when.
fn summary(b: &Breach, tz: &jiff::tz::TimeZone) -> String {
    let raised = if b.raised() {
        b.triggers
            .first()
            .map(|t| format!(" (raised from {})", severity_word(t.severity)))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let n = b.triggers.len();
    format!(
        "{} breach {}{raised}: {} ({}) reached for {} [{}{}], {} request{} since {}",
        severity_word(b.severity),
        b.id,
        b.device.as_deref().unwrap_or("unknown device"),
        b.client,
        b.site,
        b.rule,
        b.category
            .as_ref()
            .map(|c| format!(", {c}"))
            .unwrap_or_default(),
        n,
        if n == 1 { "" } else { "s" },
        local_time(b.first, tz),
    )
}

/// Subject and plain-text body of an e-mail for one breach or a digest. `hint` names the
/// command to review a breach; `{id}` in it is replaced by the breach's id.
pub(crate) fn email_text(
    breach: &Breach,
    digest: &[Breach],
    hint: &str,
    tz: &jiff::tz::TimeZone,
) -> (String, String) {
    let mut body = String::new();
    let describe = |b: &Breach, body: &mut String| {
        let _ = writeln!(body, "Breach {} - {}", b.id, severity_word(b.severity));
        let _ = writeln!(body, "  Rule:      {}", b.rule);
        let _ = writeln!(
            body,
            "  Device:    {} ({})",
            b.device.as_deref().unwrap_or("unknown"),
            b.client
        );
        if let Some(u) = &b.user {
            let _ = writeln!(body, "  User:      {u}");
        }
        if let Some(g) = &b.group {
            let _ = writeln!(body, "  Group:     {g}");
        }
        let _ = writeln!(body, "  Site:      {}", b.site);
        if let Some(c) = &b.category {
            let _ = writeln!(body, "  Category:  {c}");
        }
        let _ = writeln!(
            body,
            "  When:      {} (seen {} time{}, last {})",
            local_time(b.first, tz),
            b.count,
            if b.count == 1 { "" } else { "s" },
            local_time(b.last, tz)
        );
        let _ = writeln!(body, "  Requests, in order:");
        for (i, t) in b.triggers.iter().enumerate() {
            let what = match &t.search {
                Some(s) => format!("searched \"{s}\""),
                None => t.target.clone(),
            };
            let _ = writeln!(
                body,
                "  {:>3}. {}  {}  {}",
                i + 1,
                local_time(t.time, tz),
                severity_word(t.severity),
                what
            );
            let repeat = if t.count > 1 {
                format!(", {} times, last {}", t.count, local_time(t.last, tz))
            } else {
                String::new()
            };
            let _ = writeln!(
                body,
                "       device {} ({}), user {}, rule {}{repeat}",
                t.device.as_deref().unwrap_or("unknown"),
                t.client,
                t.user.as_deref().unwrap_or("unknown"),
                t.rule
            );
            if t.search.is_some() {
                let _ = writeln!(body, "       {}", t.target);
            }
        }
        let _ = writeln!(body);
    };
    let subject = if digest.is_empty() {
        describe(breach, &mut body);
        format!("[Hedgerow] {}", summary(breach, tz))
    } else {
        for b in digest {
            describe(b, &mut body);
        }
        format!("[Hedgerow] digest: {} breaches", digest.len())
    };
    let id = if digest.is_empty() {
        breach.id.to_string()
    } else {
        "ID".to_owned()
    };
    let _ = writeln!(body, "{}", hint.replace("{id}", &id));
    (subject, body)
}

/// POSTs `body` to `url`; any 2xx answer is success.
pub(crate) async fn webhook(url: &str, body: &serde_json::Value) -> Result<(), SendError> {
    let r = tokio::time::timeout(TIMEOUT, post(url, body))
        .await
        .map_err(|_| SendError::Timeout(TIMEOUT))
        .and_then(|r| r);
    count("webhook", &r);
    r
}

/// Counts one delivery attempt, sent or failed, by channel.
fn count(channel: &'static str, r: &Result<(), SendError>) {
    let result = if r.is_ok() { "sent" } else { "failed" };
    metrics::counter!("hedgerow_alerts_total", "channel" => channel, "result" => result)
        .increment(1);
}

async fn post(url: &str, body: &serde_json::Value) -> Result<(), SendError> {
    let u = url::Url::parse(url).map_err(|e| SendError::Url(e.to_string()))?;
    let host = u
        .host_str()
        .ok_or_else(|| SendError::Url("no host".into()))?
        .to_owned();
    let port = u.port_or_known_default().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    };
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, u.authority())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "hedgerow-alert")
        .body(Full::new(hyper::body::Bytes::from(body.to_string())))
        .map_err(|e| SendError::Url(e.to_string()))?;
    let status = if u.scheme() == "https" {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| SendError::Url(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| SendError::Url(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        exchange(TokioIo::new(tls), req).await?
    } else {
        exchange(TokioIo::new(tcp), req).await?
    };
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(SendError::Status(status))
    }
}

async fn exchange<T>(io: T, req: hyper::Request<Full<hyper::body::Bytes>>) -> Result<u16, SendError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    // Read the answer so the server sees a clean exchange.
    let _ = resp.into_body().collect().await;
    Ok(status)
}

/// Sends one e-mail to every configured recipient.
pub(crate) async fn email(cfg: &EmailConfig, subject: &str, body: &str) -> Result<(), SendError> {
    let r = email_once(cfg, subject, Body::Text(body)).await;
    count("email", &r);
    r
}

/// Sends one HTML e-mail with a plain-text alternative to every configured recipient.
pub(crate) async fn email_html(
    cfg: &EmailConfig,
    subject: &str,
    html: &str,
    text: &str,
) -> Result<(), SendError> {
    let r = email_once(cfg, subject, Body::Html { html, text }).await;
    count("email", &r);
    r
}

/// What an e-mail carries.
enum Body<'a> {
    Text(&'a str),
    /// `multipart/alternative`: the plain text first, the HTML preferred.
    Html {
        html: &'a str,
        text: &'a str,
    },
}

async fn email_once(cfg: &EmailConfig, subject: &str, body: Body<'_>) -> Result<(), SendError> {
    use lettre::message::MultiPart;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let err = |e: &dyn std::fmt::Display| SendError::Email(e.to_string());
    let mut msg = Message::builder()
        .from(cfg.from.parse().map_err(|e| err(&e))?)
        .subject(subject);
    for to in &cfg.to {
        msg = msg.to(to.parse().map_err(|e| err(&e))?);
    }
    let msg = match body {
        Body::Text(t) => msg.body(t.to_owned()),
        Body::Html { html, text } => msg.multipart(MultiPart::alternative_plain_html(
            text.to_owned(),
            html.to_owned(),
        )),
    }
    .map_err(|e| err(&e))?;
    let mut builder = match cfg.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.server),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.server)
            .map_err(|e| err(&e))?,
        SmtpTls::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.server).map_err(|e| err(&e))?
        }
    }
    .port(cfg.port)
    .timeout(Some(TIMEOUT));
    if let (Some(user), Some(file)) = (&cfg.username, &cfg.password_file) {
        let password = tokio::fs::read_to_string(file)
            .await
            .map_err(|e| SendError::Email(format!("reading {}: {e}", file.display())))?;
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.clone(),
            password.trim().to_owned(),
        ));
    }
    builder
        .build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|e| err(&e))
}
