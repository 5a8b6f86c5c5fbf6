//! This crate tells the Designated Safeguarding Lead about breaches: serious ones at once,
//! the rest in a digest.
//!
//! The [`Alerter`] reads breaches that still need alerting from the log store (so an alert
//! survives a restart), sends each on every configured channel (a JSON POST to a webhook, an
//! e-mail over SMTP), retries with exponential backoff, and records how each channel went on
//! the breach itself. Breaches below `[alerts] immediate` wait for the digest, which goes out
//! every `digest_every` with everything else since the last one.
//!
//! Every alert names the breach's id (the one `hedgerow breaches show` takes) and carries
//! every trigger of the breach: each distinct search, URL or name with its time, device and
//! user. A breach raised by a more severe trigger is alerted again at its new severity.
//! Times in text are in the school's time zone ([`Alerter::with_time_zone`]).
//!
//! Illegal-tier breaches carry `[protected entry] #reference` only: the store never holds the
//! protected host or URL.

mod ops;
mod send;
mod service;

use std::sync::Arc;
use std::time::Duration;

use hedgerow_config::AlertsConfig;
use hedgerow_model::{Clock, Severity};
use hedgerow_store::{Breach, Delivery, DeliveryState, Store, StoreError};

pub use ops::{Operational, send_operational, send_report};
pub use send::{SendError, local_time};
pub use service::AlertService;

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(900);
const DIGEST_KEY: &str = "digest-last";

/// Sends alerts for breaches in the store.
pub struct Alerter {
    store: Arc<Store>,
    config: AlertsConfig,
    clock: Arc<dyn Clock>,
    /// The school's time zone, for times in messages.
    time_zone: jiff::tz::TimeZone,
    /// Where a breach's review can be done, shown in messages; `{id}` is replaced by the
    /// breach's id.
    pub review_hint: String,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter").finish_non_exhaustive()
    }
}

/// The wait before attempt `n + 1` after `n` failures: 1 s, 2 s, 4 s... up to 15 minutes.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(10).saturating_sub(1)).min(MAX_BACKOFF)
}

impl Alerter {
    pub fn new(store: Arc<Store>, config: AlertsConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            config,
            clock,
            time_zone: jiff::tz::TimeZone::UTC,
            review_hint: "Review it with `hedgerow breaches show {id}` on the appliance.".into(),
        }
    }

    /// Times in messages in `tz` (the school's, `[server] timezone`) rather than UTC.
    pub fn with_time_zone(mut self, tz: jiff::tz::TimeZone) -> Self {
        self.time_zone = tz;
        self
    }

    fn channels(&self) -> Vec<&'static str> {
        let mut c = Vec::new();
        if self.config.webhook.is_some() {
            c.push("webhook");
        }
        if self.config.email.is_some() {
            c.push("email");
        }
        c
    }

    /// Runs until the task is dropped: alerts every `poll`, the digest when due.
    pub async fn run(self, poll: Duration) {
        self.run_until(poll, std::future::pending()).await;
    }

    /// As [`Self::run`], until `stop` completes. A pass under way is finished first, so no
    /// alert is cut off between being sent and its delivery being recorded.
    pub async fn run_until(self, poll: Duration, stop: impl Future<Output = ()>) {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.pass().await {
                tracing::error!("alerts: {e}");
            }
        }
    }

    /// One pass: every due alert is tried once, and the digest goes out if it is due.
    pub async fn pass(&self) -> Result<(), StoreError> {
        let store = self.store.clone();
        let pending = tokio::task::spawn_blocking(move || store.pending_alerts())
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        for breach in pending {
            if breach.severity < self.config.immediate {
                // The digest covers it (unless a trigger raises it meanwhile).
                let (id, at) = (breach.id, breach.severity);
                self.blocking(move |s| s.clear_pending(id, at)).await?;
                continue;
            }
            self.alert(&breach).await?;
        }
        self.digest_if_due().await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    /// Sends the alert for the breach at its current severity on every channel not done
    /// with it: a breach raised by a more severe trigger is alerted again, with all its
    /// triggers.
    async fn alert(&self, breach: &Breach) -> Result<(), StoreError> {
        let now = self.clock.now();
        let severity = Some(breach.severity);
        let channels = self.channels();
        let mut finished = 0;
        for channel in &channels {
            let previous = breach.delivery(channel);
            let attempts = previous.map_or(0, |d| d.attempts);
            match previous.map(|d| d.state) {
                Some(DeliveryState::Sent | DeliveryState::Failed | DeliveryState::Superseded) => {
                    finished += 1;
                    continue;
                }
                Some(DeliveryState::Retrying) => {
                    let due = previous
                        .map_or(now, |d| d.at.checked_add(backoff(attempts)).unwrap_or(d.at));
                    if now < due {
                        continue;
                    }
                }
                None => {}
            }
            let result = self.send(channel, breach, &[]).await;
            let attempts = attempts + 1;
            let delivery = match result {
                Ok(()) => {
                    tracing::info!(breach = breach.id, channel, "alert sent");
                    Delivery {
                        channel: (*channel).into(),
                        state: DeliveryState::Sent,
                        attempts,
                        last_error: None,
                        at: now,
                        severity,
                    }
                }
                Err(e) => {
                    let state = if attempts >= self.config.attempts {
                        DeliveryState::Failed
                    } else {
                        DeliveryState::Retrying
                    };
                    tracing::warn!(breach = breach.id, channel, attempts, "alert not sent: {e}");
                    Delivery {
                        channel: (*channel).into(),
                        state,
                        attempts,
                        last_error: Some(e.to_string()),
                        at: now,
                        severity,
                    }
                }
            };
            if delivery.state != DeliveryState::Retrying {
                finished += 1;
            }
            let id = breach.id;
            self.blocking(move |s| s.set_delivery(id, delivery, false))
                .await?;
        }
        if finished == channels.len() {
            let (id, at) = (breach.id, breach.severity);
            self.blocking(move |s| s.clear_pending(id, at)).await?;
        }
        Ok(())
    }

    async fn send(
        &self,
        channel: &str,
        breach: &Breach,
        digest: &[Breach],
    ) -> Result<(), SendError> {
        match channel {
            "webhook" => match &self.config.webhook {
                Some(w) => {
                    let body = send::payload(breach, digest, &self.time_zone);
                    send::webhook(&w.url, &body).await
                }
                None => Ok(()),
            },
            _ => match &self.config.email {
                Some(e) => {
                    let (subject, body) =
                        send::email_text(breach, digest, &self.review_hint, &self.time_zone);
                    send::email(e, &subject, &body).await
                }
                None => Ok(()),
            },
        }
    }

    async fn digest_if_due(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let last = self.blocking(|s| s.meta_time(DIGEST_KEY)).await?;
        let Some(last) = last else {
            // First start: the first digest covers from now.
            return self
                .blocking(move |s| s.set_meta_time(DIGEST_KEY, now))
                .await;
        };
        let every = jiff::SignedDuration::try_from(self.config.digest_every)
            .unwrap_or(jiff::SignedDuration::MAX);
        if now.duration_since(last) < every {
            return Ok(());
        }
        let min = self.config.immediate;
        let list: Vec<Breach> = self
            .blocking(move |s| s.breaches_between(last, now))
            .await?
            .into_iter()
            .filter(|b| b.severity < min)
            .collect();
        let Some(first) = list.first() else {
            return self
                .blocking(move |s| s.set_meta_time(DIGEST_KEY, now))
                .await;
        };
        let mut ok = true;
        for channel in self.channels() {
            if let Err(e) = self.send(channel, first, &list).await {
                tracing::warn!(channel, "digest not sent, will retry: {e}");
                ok = false;
            }
        }
        if ok {
            let ids: Vec<(u64, Severity)> = list.iter().map(|b| (b.id, b.severity)).collect();
            self.blocking(move |s| {
                for (id, severity) in ids {
                    let d = Delivery {
                        channel: "digest".into(),
                        state: DeliveryState::Sent,
                        attempts: 1,
                        last_error: None,
                        at: now,
                        severity: Some(severity),
                    };
                    s.set_delivery(id, d, true)?;
                }
                s.set_meta_time(DIGEST_KEY, now)
            })
            .await?;
            tracing::info!(breaches = list.len(), "digest sent");
        }
        Ok(())
    }
}

/// A severity as people read it.
pub fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "CRITICAL",
        Severity::High => "HIGH",
        Severity::Medium => "MEDIUM",
        Severity::Low => "LOW",
    }
}
