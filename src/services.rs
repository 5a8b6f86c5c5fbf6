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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use hedgerow_model::{Clock, EventSink};
use hedgerow_policy::PolicyHandle;
use hedgerow_store::{Recorder, Store};

use crate::logs;

/// How often the alerter looks for breaches to send.
const ALERT_POLL: Duration = Duration::from_millis(500);
/// How often the list updater looks at the downloaded lists (each has its own `every`).
const LIST_TICK: Duration = Duration::from_secs(1);
/// How long a stop waits for DNS queries in flight (an upstream's deadline is 2 s by default).
const DNS_GRACE: Duration = Duration::from_secs(5);
/// How long a stop waits for proxy requests and tunnels before closing them.
const PROXY_GRACE: Duration = Duration::from_secs(5);

/// Everything the appliance runs besides change control (the API) and the signal loop.
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
    /// `[ship]`: the recorder's tap, when configured.
    shipper: Option<Arc<hedgerow_ship::Shipper>>,
    purge: tokio::task::JoinHandle<()>,
    purge_now: Arc<tokio::sync::Notify>,
    metrics: Option<crate::metrics::MetricsServer>,
    /// `/health/ready`: set once everything has started, cleared when stopping.
    ready: Arc<AtomicBool>,
    lists: Option<hedgerow_lists::Updater>,
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
        let shipper = match &config.ship {
            Some(ship) => {
                let shipper = hedgerow_ship::Shipper::start(ship)
                    .context("starting log shipping ([ship])")?;
                recorder.set_tap(Some(shipper.clone()));
                Some(shipper)
            }
            None => None,
        };
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
        system_upstreams(&config.dns);
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
        let ready = Arc::new(AtomicBool::new(false));
        let metrics = match &config.metrics {
            Some(m) => Some(
                crate::metrics::start(
                    &m.listen,
                    crate::metrics::Sources {
                        resolver: resolver.clone(),
                        recorder: recorder.clone(),
                        store: store.clone(),
                        policy: handle.clone(),
                        ready: ready.clone(),
                    },
                )
                .await?,
            ),
            None => None,
        };
        crate::metrics::lists(&snap);
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
            shipper,
            purge,
            purge_now,
            metrics,
            ready,
            lists: None,
        })
    }

    /// Starts the downloads of lists with a `url`, which reload through `reload` (the same
    /// all-or-nothing reload as SIGHUP) when a new copy is staged; and marks the appliance
    /// ready (`/health/ready`).
    pub(crate) fn start_lists(&mut self, reload: hedgerow_lists::ReloadFn) {
        let h = self.handle.clone();
        let alert_handle = self.handle.clone();
        let store = self.store.clone();
        let hooks = hedgerow_lists::Hooks {
            config: Arc::new(move || {
                let snap = h.snapshot();
                Arc::new(snap.config().clone())
            }),
            reload,
            alert: Arc::new(move |a: hedgerow_lists::StaleAlert| {
                list_alert(&alert_handle, &store, a);
            }),
        };
        if self
            .handle
            .snapshot()
            .config()
            .lists
            .iter()
            .any(|l| l.fetch.is_some())
        {
            self.lists = Some(hedgerow_lists::Updater::start(hooks, LIST_TICK));
        }
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Reloads the configuration and every list; the reply line for `hedgerow reload`:
    /// `ok: …` when all of it is in force, `refused, …` (with the reason) when none of it is.
    pub(crate) async fn reload(&mut self) -> std::result::Result<String, String> {
        let mut promoted = None;
        match self.try_reload(&mut promoted).await {
            Ok(mut reply) => {
                if let Some(p) = promoted {
                    let names: Vec<&str> = p.lists().collect();
                    if !names.is_empty() {
                        reply.push_str(&format!(
                            "; downloaded lists in force: {}",
                            names.join(", ")
                        ));
                    }
                    p.commit();
                }
                metrics::counter!("hedgerow_reloads_total", "result" => "ok").increment(1);
                tracing::info!("{reply}");
                Ok(reply)
            }
            Err(why) => {
                if let Some(p) = promoted {
                    p.rollback(&why);
                }
                metrics::counter!("hedgerow_reloads_total", "result" => "refused").increment(1);
                tracing::error!("reload refused, previous policy still in force: {why}");
                Err(format!("refused, previous policy still in force: {why}"))
            }
        }
    }

    /// The reload; `promoted` receives the downloaded lists it put in place (committed or
    /// rolled back by the caller with the outcome).
    async fn try_reload(
        &mut self,
        promoted: &mut Option<hedgerow_lists::Promotion>,
    ) -> std::result::Result<String, String> {
        // Read, compare, build and load files off the async workers; nothing is in force yet.
        let h = self.handle.clone();
        let current = h.snapshot();
        let (promotion, prepared) = tokio::task::spawn_blocking(move || {
            let config = match h.read_config() {
                Ok(c) => c,
                Err(e) => return (None, Err(e.to_string())),
            };
            let diff = hedgerow_config::diff(current.config(), &config);
            if let Some(why) = diff.refusal() {
                return (None, Err(why));
            }
            // Downloaded lists staged since the last reload come into force with this one.
            let promotion = match hedgerow_lists::promote(&config) {
                Ok(p) => p,
                Err(e) => return (None, Err(format!("putting downloaded lists in place: {e}"))),
            };
            let prepared = (|| {
                let proxy = match config.proxy {
                    Some(_) => Some(
                        hedgerow_proxy::Settings::load(&config)
                            .map_err(|e| format!("[proxy]: {e}"))?,
                    ),
                    None => None,
                };
                let staged = h.stage(config).map_err(|e| e.to_string())?;
                Ok((staged, diff, proxy))
            })();
            (Some(promotion), prepared)
        })
        .await
        .map_err(|e| format!("reload task failed: {e}"))?;
        *promoted = promotion;
        let (staged, diff, proxy_settings) = prepared?;

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
        crate::metrics::lists(&snap);
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

    /// Stops every service: not ready any more, no list downloads, then the DNS and proxy
    /// listeners stop taking queries and requests and drain those in flight (their events
    /// go to the recorder), then the purge, the alerter and the metrics listener. The recorder
    /// is the caller's, stopped after this, so it writes every event of a drained answer.
    pub(crate) async fn stop(self) {
        self.ready.store(false, Ordering::SeqCst);
        if let Some(l) = self.lists {
            l.stop();
        }
        let proxy = async {
            if let Some(p) = self.proxy {
                p.drain(PROXY_GRACE).await;
            }
        };
        tokio::join!(self.dns.shutdown(DNS_GRACE), proxy);
        self.purge.abort();
        self.alerts.abort();
        if let Some(shipper) = self.shipper {
            // What the last queries recorded (breaches included) goes out first.
            let r = self.recorder.clone();
            let _ = tokio::task::spawn_blocking(move || r.sync()).await;
            shipper.stop(Duration::from_secs(5)).await;
            let s = shipper.stats();
            tracing::info!(clickhouse = ?s.clickhouse, syslog = ?s.syslog, "log shipping stopped");
        }
        if let Some(m) = self.metrics {
            m.stop();
        }
    }
}

/// Says which upstreams `address = "system"` found, and which it skipped as Hedgerow's own.
fn system_upstreams(dns: &hedgerow_config::DnsConfig) {
    let found: Vec<String> = dns
        .upstreams
        .iter()
        .filter(|u| u.system)
        .map(|u| u.address.to_string())
        .collect();
    if found.is_empty() {
        return;
    }
    let skipped: Vec<String> = dns.system_skipped.iter().map(ToString::to_string).collect();
    tracing::info!(
        "DNS upstreams from {}: {}; skipped as Hedgerow's own: {}",
        dns.resolv_conf.display(),
        found.join(", "),
        if skipped.is_empty() {
            "none".to_owned()
        } else {
            skipped.join(", ")
        }
    );
}

/// A downloaded list's operational problem: the service log, the audit log, and the alert
/// channels when configured.
fn list_alert(handle: &PolicyHandle, store: &Arc<Store>, a: hedgerow_lists::StaleAlert) {
    let now = jiff::Timestamp::now();
    let severity = if a.critical {
        hedgerow_model::Severity::Critical
    } else {
        hedgerow_model::Severity::High
    };
    tracing::error!(list = %a.list, kind = a.kind, "{}", a.message);
    if let Err(e) = store.append_audit(now, "hedgerow", a.kind, &a.message) {
        tracing::error!("audit log: {e}");
    }
    let Some(alerts) = handle.snapshot().config().alerts.clone() else {
        tracing::error!(
            "no [alerts] configured: nobody but this log hears about list {:?}",
            a.list
        );
        return;
    };
    let alert = hedgerow_alert::Operational {
        severity,
        kind: a.kind.into(),
        message: a.message,
    };
    tokio::spawn(async move {
        for (channel, e) in hedgerow_alert::send_operational(&alerts, &alert, now).await {
            tracing::error!(channel, "operational alert not sent: {e}");
        }
    });
}

/// Said after a bind failure: a cause a restart would cure.
const OVERLAP: &str = " (if it overlaps a listener being removed, such as 0.0.0.0:53 \
replacing 10.0.0.53:53, that needs a restart)";
