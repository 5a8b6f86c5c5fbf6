//! The schedule: each downloaded list fetched when due, a reload when something was staged,
//! and an operational alert when a list has not been confirmed current within its `max_age`.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hedgerow_config::{Config, ListKind, ListSource};

use crate::fetch::{Attempt, FetchError, fetch_once};
use crate::state::{self, staged_path};

/// A failed attempt is tried again after this long (or `every`, if that is sooner).
const RETRY: Duration = Duration::from_secs(300);

/// The reload the binary runs (the same all-or-nothing reload as SIGHUP).
pub type ReloadFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

/// What the updater needs of the running appliance.
#[derive(Clone)]
pub struct Hooks {
    /// The configuration in force (read at every tick, so reloads are followed).
    pub config: Arc<dyn Fn() -> Arc<Config> + Send + Sync>,
    pub reload: ReloadFn,
    /// Sends an operational alert (the binary owns the alert channels).
    pub alert: Arc<dyn Fn(StaleAlert) + Send + Sync>,
}

/// An operational problem with a downloaded list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleAlert {
    pub list: String,
    /// The illegal tier's problems are critical.
    pub critical: bool,
    /// `list-stale` or `list-refused`.
    pub kind: &'static str,
    pub message: String,
}

/// The running schedule; stopped by [`Updater::stop`] or when dropped.
pub struct Updater {
    task: tokio::task::JoinHandle<()>,
}

impl Updater {
    /// Starts the schedule, looking at every downloaded list each `tick`.
    pub fn start(hooks: Hooks, tick: Duration) -> Self {
        let task = tokio::spawn(run(hooks, tick));
        Self { task }
    }

    /// Stops it (a download under way is dropped; nothing is staged half-written, since a
    /// staged file is renamed into place whole).
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Updater {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(hooks: Hooks, tick: Duration) {
    let started = jiff::Timestamp::now();
    loop {
        let config = (hooks.config)();
        let state_dir = config.server.state_dir.clone();
        let limit = config.server.illegal_shrink_limit;
        let mut staged = Vec::new();
        for list in config.lists.iter().filter(|l| l.fetch.is_some()) {
            if due(list, &state_dir) {
                match fetch_once(list, &state_dir, limit).await {
                    Ok(Attempt::Staged { .. }) => staged.push(list.clone()),
                    Ok(_) => {}
                    Err(e) => refused(&hooks, list, &state_dir, &e),
                }
            }
            stale_check(&hooks, list, &state_dir, started);
        }
        if !staged.is_empty() {
            let names: Vec<&str> = staged.iter().map(|l| l.name.as_str()).collect();
            match (hooks.reload)().await {
                Ok(reply) => {
                    tracing::info!(lists = ?names, "reload for downloaded lists: {reply}")
                }
                Err(why) => {
                    tracing::error!(lists = ?names, "reload for downloaded lists: {why}");
                    for list in &staged {
                        let (dir, list, why) = (state_dir.clone(), list.clone(), why.clone());
                        let _ = tokio::task::spawn_blocking(move || {
                            state::drop_staged(&dir, &list, &why)
                        })
                        .await;
                    }
                }
            }
        }
        tokio::time::sleep(tick).await;
    }
}

/// Whether `list` is due: never tried, or `every` since the last attempt (a failed one:
/// `RETRY` or `every`, whichever is sooner). A staged copy still waiting is not fetched again.
fn due(list: &ListSource, state_dir: &std::path::Path) -> bool {
    let Some(fetch) = &list.fetch else {
        return false;
    };
    if staged_path(list).is_file() {
        return false;
    }
    let s = state::status(state_dir, &list.name);
    let Some(last) = s.attempted else {
        return true;
    };
    let wait = if s.ok {
        fetch.every
    } else {
        fetch.every.min(RETRY)
    };
    let since: Duration = jiff::Timestamp::now()
        .duration_since(last)
        .try_into()
        .unwrap_or(Duration::MAX);
    since >= wait
}

/// A download that arrived but failed verification is raised at once for the illegal tier
/// (a list that shrank, or whose signature does not verify, needs someone to look).
fn refused(hooks: &Hooks, list: &ListSource, state_dir: &std::path::Path, e: &FetchError) {
    let verification = matches!(
        e,
        FetchError::Verify(_) | FetchError::Sha256 { .. } | FetchError::Signature(_)
    );
    if list.kind == ListKind::Illegal
        && verification
        && !state::status(state_dir, &list.name).refused_alerted
    {
        state::update(state_dir, &list.name, |s| s.refused_alerted = true);
        (hooks.alert)(StaleAlert {
            list: list.name.clone(),
            critical: true,
            kind: "list-refused",
            message: format!(
                "The download of illegal-tier list {:?} was refused: {e}. Its last good copy stays in force, so nothing is unblocked; check the list's source.",
                list.name
            ),
        });
    }
}

/// Raises one alert when `list` has gone longer than its `max_age` without being confirmed
/// current (counted from the updater's start when it never was), and sets its metrics.
fn stale_check(
    hooks: &Hooks,
    list: &ListSource,
    state_dir: &std::path::Path,
    started: jiff::Timestamp,
) {
    let Some(fetch) = &list.fetch else {
        return;
    };
    let now = jiff::Timestamp::now();
    let s = state::status(state_dir, &list.name);
    let since = s.confirmed.unwrap_or(started);
    let age: Duration = now.duration_since(since).try_into().unwrap_or_default();
    metrics::gauge!("hedgerow_list_age_seconds", "list" => list.name.clone())
        .set(age.as_secs_f64());
    if let Some(n) = s.entries {
        metrics::gauge!("hedgerow_list_entries", "list" => list.name.clone()).set(n as f64);
    }
    if age <= fetch.max_age || s.stale_alerted {
        return;
    }
    let critical = list.kind == ListKind::Illegal;
    tracing::error!(
        list = %list.name,
        "list not confirmed current for {}s, longer than its max_age: {}",
        age.as_secs(),
        s.result
    );
    (hooks.alert)(StaleAlert {
        list: list.name.clone(),
        critical,
        kind: "list-stale",
        message: format!(
            "List {:?} has not been confirmed current for {} (max_age {}); the last attempt: {}. The appliance goes on enforcing its last good copy.",
            list.name,
            human(age),
            human(fetch.max_age),
            if s.result.is_empty() {
                "none yet"
            } else {
                &s.result
            }
        ),
    });
    state::update(state_dir, &list.name, |s| s.stale_alerted = true);
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 {
        format!("{}d {}h", s / 86_400, s % 86_400 / 3600)
    } else if s >= 3600 {
        format!("{}h {}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{s}s")
    }
}

/// At start, before the first policy build: downloads each list that has no copy yet (a
/// fresh install) and puts it in force directly, so the first build has it. Waits at most
/// `timeout` for each; a list that cannot be had is left to the policy (skipped, or for the
/// illegal tier its last good copy, or the start refused).
pub async fn prime(config: &Config, timeout: Duration) {
    let state_dir: PathBuf = config.server.state_dir.clone();
    for list in config.lists.iter().filter(|l| l.fetch.is_some()) {
        if list.path.is_file() {
            continue;
        }
        let r = tokio::time::timeout(
            timeout,
            fetch_once(list, &state_dir, config.server.illegal_shrink_limit),
        )
        .await;
        match r {
            Ok(Ok(Attempt::Staged { .. })) => {
                if let Err(e) = std::fs::rename(staged_path(list), &list.path) {
                    tracing::error!(list = %list.name, "cannot put the first download in force: {e}");
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {} // logged and recorded by fetch_once
            Err(_) => {
                tracing::warn!(list = %list.name, "first download took longer than {}s; left to the schedule", timeout.as_secs())
            }
        }
    }
}
