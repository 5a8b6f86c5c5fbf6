//! The alerter as a service a reload can change: `[alerts]` added, removed or edited.

use std::sync::Arc;
use std::time::Duration;

use hedgerow_config::AlertsConfig;
use hedgerow_model::Clock;
use hedgerow_store::Store;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Alerter;

/// Runs an [`Alerter`] for the `[alerts]` in force, and replaces it when they change.
pub struct AlertService {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    poll: Duration,
    config: Option<AlertsConfig>,
    tz: jiff::tz::TimeZone,
    running: Option<Running>,
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for AlertService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertService")
            .field("running", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

impl AlertService {
    /// Starts alerting with `config` (nothing runs without one), a pass every `poll`.
    pub fn start(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        poll: Duration,
        config: Option<AlertsConfig>,
        tz: jiff::tz::TimeZone,
    ) -> Self {
        let mut service = Self {
            store,
            clock,
            poll,
            config: None,
            tz: tz.clone(),
            running: None,
        };
        service.apply(config.as_ref(), &tz);
        service
    }

    /// Puts `config` in force; `false` when it is what runs already. Otherwise the running
    /// alerter finishes the pass it is in and stops, and the new one starts after it, so two
    /// never send the same alert. Pending alerts are in the store and carry over.
    /// Times in messages are shown in `tz`, the school's time zone.
    pub fn apply(&mut self, config: Option<&AlertsConfig>, tz: &jiff::tz::TimeZone) -> bool {
        if self.config.as_ref() == config
            && (config.is_some() == self.running.is_some())
            && self.tz.iana_name() == tz.iana_name()
        {
            return false;
        }
        self.tz = tz.clone();
        let before = self.running.take().map(|r| {
            let _ = r.stop.send(());
            r.task
        });
        self.config = config.cloned();
        let Some(config) = config.cloned() else {
            return true;
        };
        let alerter = Alerter::new(self.store.clone(), config, self.clock.clone())
            .with_time_zone(self.tz.clone());
        let (stop, stopped) = oneshot::channel();
        let poll = self.poll;
        let task = tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            alerter
                .run_until(poll, async {
                    let _ = stopped.await;
                })
                .await;
        });
        self.running = Some(Running { stop, task });
        true
    }

    /// Stops at once, even in the middle of a pass (the appliance is stopping; pending alerts
    /// stay in the store for the next start).
    pub fn abort(self) {
        if let Some(r) = self.running {
            r.task.abort();
        }
    }
}
