//! The running appliance's services, and reloads that apply all of a new configuration or
//! none of it.
//!
//! A reload is checked before anything changes: the new configuration is read and compared
//! with the one in force (settings that need a restart refuse it, by name), the new policy
//! snapshot is built, the proxy's files (CA, users) are loaded and new listeners are bound.
//! Only then is the snapshot put in force and the rest applied, none of which can fail:
//! the resolver's cache size, DNS and proxy listeners opened and closed (the others are not
//! touched), the proxy's settings, the recorder's breach rules and queue, the alerter, the
//! retention purge. A refused reload drops what it prepared and leaves everything as it was.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hedgerow_model::{Clock, EventSink};
use hedgerow_policy::PolicyHandle;
use hedgerow_store::{Recorder, Store};

use crate::logs;

/// How often the alerter looks for breaches to send.
const ALERT_POLL: Duration = Duration::from_millis(500);

/// Everything the appliance runs besides the control socket and the signal loop.
pub(crate) struct Services {
    pub(crate) handle: Arc<PolicyHandle>,
    pub(crate) store: Arc<Store>,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) resolver: Arc<hedgerow_dns::Resolver>,
    events: Arc<dyn EventSink>,
    clock: Arc<dyn Clock>,
    dns: hedgerow_dns::DnsServer,
    proxy: Option<hedgerow_proxy::Listeners>,
    alerts: hedgerow_alert::AlertService,
    purge: tokio::task::JoinHandle<()>,
    purge_now: Arc<tokio::sync::Notify>,
}

impl Services {
    /// Starts the recorder, the purge, the alerter, and the DNS and proxy listeners.
    pub(crate) async fn start(
        handle: Arc<PolicyHandle>,
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        notes: Arc<hedgerow_model::BlockNotes>,
    ) -> Result<Self> {
        let snap = handle.snapshot();
        let config = snap.config();
        let recorder = logs::recorder(store.clone(), config)?;
        if !config.server.access_log {
            tracing::warn!("access_log = false: access events are not stored (breaches still are)");
        }
        let events: Arc<dyn EventSink> = recorder.clone();
        let purge_now = Arc::new(tokio::sync::Notify::new());
        let h = handle.clone();
        let purge = logs::spawn_purge(
            store.clone(),
            move || logs::retention(h.snapshot().config()),
            clock.clone(),
            purge_now.clone(),
        );
        let alerts = hedgerow_alert::AlertService::start(
            store.clone(),
            clock.clone(),
            ALERT_POLL,
            config.alerts.clone(),
            jiff::tz::TimeZone::get(&config.server.timezone)?,
        );
        // Blocks answered with the block page's address are noted for the block page server.
        let resolver = Arc::new(
            hedgerow_dns::Resolver::new(handle.clone(), events.clone(), clock.clone())
                .with_block_notes(notes),
        );
        let mut sockets = Vec::new();
        for addr in &config.dns.listen {
            let bound = hedgerow_dns::bind(*addr)
                .await
                .with_context(|| format!("binding DNS listener {addr}"))?;
            tracing::info!("listening for DNS/UDP on {}", bound.udp_addr()?);
            tracing::info!("listening for DNS/TCP on {}", bound.tcp_addr()?);
            sockets.push(bound);
        }
        let dns = hedgerow_dns::start(resolver.clone(), sockets);
        let proxy = match &config.proxy {
            Some(p) => {
                let proxy = hedgerow_proxy::Proxy::new(
                    handle.clone(),
                    events.clone(),
                    clock.clone(),
                    resolver.clone(),
                )
                .context("starting the web proxy")?;
                let mut set = hedgerow_proxy::Listeners::new(proxy);
                let bound = set
                    .bind_missing(&p.listen)
                    .await
                    .context("binding the web proxy")?;
                for addr in set.reconcile(&p.listen, bound).opened {
                    tracing::info!("listening for HTTP proxy on {addr}");
                }
                Some(set)
            }
            None => None,
        };
        Ok(Self {
            handle,
            store,
            recorder,
            resolver,
            events,
            clock,
            dns,
            proxy,
            alerts,
            purge,
            purge_now,
        })
    }

    /// Reloads the configuration and every list; the reply line for `hedgerow reload`:
    /// `ok: …` when all of it is in force, `refused, …` (with the reason) when none of it is.
    pub(crate) async fn reload(&mut self) -> std::result::Result<String, String> {
        match self.try_reload().await {
            Ok(reply) => {
                tracing::info!("{reply}");
                Ok(reply)
            }
            Err(why) => {
                tracing::error!("reload refused, previous policy still in force: {why}");
                Err(format!("refused, previous policy still in force: {why}"))
            }
        }
    }

    async fn try_reload(&mut self) -> std::result::Result<String, String> {
        // Read, compare, build and load files off the async workers; nothing is in force yet.
        let h = self.handle.clone();
        let current = h.snapshot();
        let (staged, diff, proxy_settings) = tokio::task::spawn_blocking(move || {
            let config = h.read_config().map_err(|e| e.to_string())?;
            let diff = hedgerow_config::diff(current.config(), &config);
            if let Some(why) = diff.refusal() {
                return Err(why);
            }
            let proxy = match config.proxy {
                Some(_) => Some(
                    hedgerow_proxy::Settings::load(&config).map_err(|e| format!("[proxy]: {e}"))?,
                ),
                None => None,
            };
            let staged = h.stage(config).map_err(|e| e.to_string())?;
            Ok((staged, diff, proxy))
        })
        .await
        .map_err(|e| format!("reload task failed: {e}"))??;

        // Bind the new listeners; a failure drops them all again.
        let new = staged.snapshot().config();
        let dns_listen = new.dns.listen.clone();
        let dns_bound = self
            .dns
            .bind_missing(&dns_listen)
            .await
            .map_err(|e| format!("[dns] listen: {e}{}", OVERLAP))?;
        let proxy_listen: Vec<SocketAddr> = new
            .proxy
            .as_ref()
            .map(|p| p.listen.clone())
            .unwrap_or_default();
        let mut added_proxy = None;
        let mut proxy_settings_for_running = None;
        let proxy_bound = match (proxy_settings, &self.proxy) {
            (Some(settings), Some(set)) => {
                proxy_settings_for_running = Some(settings);
                set.bind_missing(&proxy_listen).await
            }
            (Some(settings), None) => {
                let proxy = hedgerow_proxy::Proxy::with_settings(
                    self.handle.clone(),
                    self.events.clone(),
                    self.clock.clone(),
                    self.resolver.clone(),
                    settings,
                );
                let set = hedgerow_proxy::Listeners::new(proxy);
                let bound = set.bind_missing(&proxy_listen).await;
                added_proxy = Some(set);
                bound
            }
            (None, _) => Ok(Vec::new()),
        }
        .map_err(|e| format!("[proxy] listen: {e}{}", OVERLAP))?;

        // Put the policy in force. Past this point nothing can fail.
        let h = self.handle.clone();
        let snap = tokio::task::spawn_blocking(move || h.commit(staged))
            .await
            .map_err(|e| format!("reload task failed: {e}"))?
            .map_err(|e| e.to_string())?;
        let config = snap.config();
        self.resolver.reconfigure(&snap);
        let dns = self.dns.reconcile(&dns_listen, dns_bound);
        if let Some(set) = added_proxy {
            self.proxy = Some(set);
        } else if let (Some(settings), Some(set)) = (proxy_settings_for_running, &self.proxy) {
            set.proxy().apply(settings);
        }
        let proxy = self
            .proxy
            .as_mut()
            .map(|set| set.reconcile(&proxy_listen, proxy_bound))
            .unwrap_or_default();
        if config.proxy.is_none() {
            self.proxy = None;
        }
        self.recorder.reconfigure(logs::recorder_options(config));
        if diff.changed("[server]") && !config.server.access_log {
            tracing::warn!("access_log = false: access events are not stored (breaches still are)");
        }
        if diff.changed("[alerts]") || diff.changed("[server]") {
            // The alerts' settings, or the time zone their messages show times in.
            self.alerts.apply(config.alerts.as_ref(), snap.timezone());
        }
        if diff.changed("[logs]") {
            // A shorter retention takes effect now, not at the next hourly purge.
            self.purge_now.notify_one();
        }
        crate::announce(&snap);
        crate::illegal_tier_alerts(&snap, &self.store);

        let s = snap.matcher().stats();
        let mut reply = format!(
            "ok: policy reloaded ({} domains, {} URLs, {} illegal-tier entries, {} groups); changed: {}",
            s.domains,
            s.urls,
            s.illegal,
            config.groups.len(),
            if diff.changed.is_empty() {
                "no settings".to_owned()
            } else {
                diff.changed.join(", ")
            }
        );
        for (udp, tcp) in &dns.opened {
            tracing::info!("listening for DNS/UDP on {udp}");
            tracing::info!("listening for DNS/TCP on {tcp}");
            reply.push_str(&format!("; opened DNS {udp}"));
        }
        for addr in &dns.closed {
            tracing::info!("closed the DNS listener on {addr}");
            reply.push_str(&format!("; closed DNS {addr}"));
        }
        for addr in &proxy.opened {
            tracing::info!("listening for HTTP proxy on {addr}");
            reply.push_str(&format!("; opened proxy {addr}"));
        }
        for addr in &proxy.closed {
            tracing::info!("closed the HTTP proxy listener on {addr}");
            reply.push_str(&format!("; closed proxy {addr}"));
        }
        for (list, reason) in snap.report().illegal_kept() {
            reply.push_str(&format!("; CRITICAL: illegal-tier list {list:?}: {reason}"));
        }
        Ok(reply)
    }

    /// Stops the listeners, the purge and the alerter (the recorder is the caller's, to be
    /// stopped after the last query is answered).
    pub(crate) async fn stop(self) {
        self.purge.abort();
        if let Some(p) = self.proxy {
            p.abort();
        }
        self.alerts.abort();
        self.dns.shutdown().await;
    }
}

/// Said after a bind failure: a cause a restart would cure.
const OVERLAP: &str = " (if it overlaps a listener being removed, such as 0.0.0.0:53 \
replacing 10.0.0.53:53, that needs a restart)";
