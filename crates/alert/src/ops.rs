//! Operational alerts: problems with the appliance itself that the DSL and the technician
//! must hear about at once (the illegal tier running on its last good copy, for one). They
//! are not breaches: no pupil did anything. Each goes to every configured channel, retried
//! with the same backoff as breach alerts, and the outcome is written to the service log.

use hedgerow_config::AlertsConfig;
use hedgerow_model::Severity;

use crate::{SendError, backoff, send, severity_word};

/// One operational problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operational {
    pub severity: Severity,
    /// A short name for the problem, such as `illegal-tier-last-good`.
    pub kind: String,
    /// What happened and what to do, in sentences.
    pub message: String,
}

impl Operational {
    fn payload(&self, time: jiff::Timestamp) -> serde_json::Value {
        serde_json::json!({
            "type": "operational",
            "kind": self.kind,
            "severity": severity_word(self.severity).to_ascii_lowercase(),
            "time": time.to_string(),
            "message": self.message,
        })
    }

    fn email(&self) -> (String, String) {
        (
            format!(
                "[Hedgerow {}] appliance problem: {}",
                severity_word(self.severity),
                self.kind
            ),
            format!(
                "{}\n\nThis is an operational alert from the school's filtering appliance, not a pupil's breach.\n",
                self.message
            ),
        )
    }
}

/// Sends `alert` on every channel of `config`, trying each up to `config.attempts` times.
/// Returns the last error of each channel that never succeeded.
pub async fn send_operational(
    config: &AlertsConfig,
    alert: &Operational,
    time: jiff::Timestamp,
) -> Vec<(&'static str, SendError)> {
    let mut failed = Vec::new();
    if let Some(w) = &config.webhook {
        let body = alert.payload(time);
        if let Err(e) = retry(config.attempts, || send::webhook(&w.url, &body)).await {
            failed.push(("webhook", e));
        }
    }
    if let Some(e) = &config.email {
        let (subject, body) = alert.email();
        if let Err(err) = retry(config.attempts, || send::email(e, &subject, &body)).await {
            failed.push(("email", err));
        }
    }
    failed
}

/// Sends a report (the weekly monitoring report) by e-mail to `[alerts.email] to`: HTML
/// with a plain-text part, tried up to `config.attempts` times. An error if no e-mail is
/// configured or every attempt failed.
pub async fn send_report(
    config: &AlertsConfig,
    subject: &str,
    html: &str,
    text: &str,
) -> Result<(), SendError> {
    let Some(e) = &config.email else {
        return Err(SendError::Email("no [alerts.email] is configured".into()));
    };
    retry(config.attempts, || send::email_html(e, subject, html, text)).await
}

async fn retry<F, Fut>(attempts: u32, mut f: F) -> Result<(), SendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), SendError>>,
{
    let mut n = 0;
    loop {
        match f().await {
            Ok(()) => return Ok(()),
            Err(e) => {
                n += 1;
                if n >= attempts.max(1) {
                    return Err(e);
                }
                tokio::time::sleep(backoff(n)).await;
            }
        }
    }
}
