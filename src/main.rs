//! The `hedgerow` binary: command-line parsing, logging set-up and the runtime. Everything it
//! does is done by the library crates; this file wires them together and turns their typed
//! errors into messages and exit codes.

mod admin;
mod alloc;
mod check;
mod lists;
mod logs;
mod metrics;
mod pidfile;
mod reports;
mod reviews;
mod services;
mod status;

#[global_allocator]
static GLOBAL: alloc::Split = alloc::Split;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hedgerow_model::{Host, UrlKey};
use hedgerow_policy::{BuildReport, PolicyHandle, PolicySnapshot, Target};

#[derive(Parser)]
#[command(
    name = "hedgerow",
    version,
    about = "Filtering and monitoring appliance for schools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance with the configuration at PATH.
    Run {
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
    },
    /// Ask the running appliance to reload its configuration and lists. A broken configuration
    /// is refused (exit 1) and the running policy stays in force. Signed in as a technician
    /// or approver, or (the service manager) with `STATE/reload.key`.
    Reload {
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        #[command(flatten)]
        creds: admin::Creds,
    },
    /// Check a configuration and every list it names; print every problem; exit 1 on errors.
    CheckConfig {
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
    /// Show access events from the log store, most recent last.
    Logs(logs::LogsArgs),
    /// List breaches, or show one.
    Breaches {
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        #[command(flatten)]
        creds: admin::Creds,
        #[command(subcommand)]
        command: Option<logs::BreachCommand>,
    },
    /// Write the whole log store (access events, breaches, audit log) as JSON lines.
    Export {
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        #[command(flatten)]
        creds: admin::Creds,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Read an export into the log store. The appliance must be stopped.
    Import {
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Review requests made from the block page: list them, show one, decide one.
    Reviews {
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        #[command(flatten)]
        creds: admin::Creds,
        #[command(subcommand)]
        command: Option<reviews::ReviewCommand>,
    },
    /// Explain the verdict for a name or URL as a given client would get it.
    Lookup {
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        /// The client's IP address (decides the group, or the device's group).
        #[arg(long, value_name = "IP")]
        client: IpAddr,
        /// Decide as at this local time (for schedules), e.g. 2026-11-23T16:00. Default: now.
        #[arg(long, value_name = "DATETIME")]
        at: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// A host name (`example.com`) or URL (`http://example.com/page`, `example.com/page`).
        target: String,
    },
    /// Lists that keep themselves current: `lists status`.
    Lists {
        #[command(subcommand)]
        command: lists::ListsCommand,
    },
    /// Accounts and their roles (through the running appliance).
    User {
        #[command(flatten)]
        auth: Box<admin::Auth>,
        #[command(subcommand)]
        command: admin::UserCommand,
    },
    /// Filter change requests: propose, approve, apply, revert (through the running appliance).
    Change {
        #[command(flatten)]
        auth: Box<admin::Auth>,
        #[command(subcommand)]
        command: admin::ChangeCommand,
    },
    /// The effectiveness check over the wire, its log, review triggers, the governors' report.
    Check {
        #[command(flatten)]
        auth: Box<admin::Auth>,
        #[command(subcommand)]
        command: check::CheckCommand,
    },
    /// The hash-chained audit log: list it or verify it.
    Audit {
        #[command(flatten)]
        auth: Box<admin::Auth>,
        #[command(subcommand)]
        command: admin::AuditCommand,
    },
}

fn main() -> ExitCode {
    alloc::configure();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::CheckConfig { path } => check_config(&path),
        Command::Reload { config, creds } => reload(&config, &creds),
        Command::Logs(args) => logs::logs(args),
        Command::Breaches {
            config,
            creds,
            command,
        } => logs::breaches(&config, &creds, command),
        Command::Export { config, creds, out } => logs::export(&config, &creds, &out),
        Command::Import { config, file } => logs::import(&config, &file),
        Command::Reviews {
            config,
            creds,
            command,
        } => reviews::reviews(&config, &creds, command),
        Command::Lookup {
            config,
            client,
            at,
            json,
            target,
        } => lookup(&config, client, at.as_deref(), json, &target),
        Command::Lists { command } => lists::lists(command),
        Command::User { auth, command } => admin::user(&auth, command),
        Command::Change { auth, command } => admin::change(&auth, command),
        Command::Audit { auth, command } => admin::audit(&auth, command),
        Command::Check { auth, command } => check::check(&auth, command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hedgerow: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    // hickory-server logs every query at info: those are pupils' access records, which belong in
    // the log store, not in the service log.
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("HEDGEROW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if let Ok(d) = "hickory_server=warn".parse() {
        filter = filter.add_directive(d);
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

/// Logs what a build found: list sizes and bad lines by file and line number (never the
/// line's text: it could be an illegal-tier entry).
fn log_report(report: &BuildReport) {
    for r in &report.lists {
        for b in &r.bad_lines {
            tracing::warn!(list = %r.list, "{}:{}: skipped bad line: {}", r.origin, b.line, b.reason);
        }
        if r.bad_line_count > r.bad_lines.len() {
            tracing::warn!(list = %r.list, "{}: {} more bad lines not shown", r.origin, r.bad_line_count - r.bad_lines.len());
        }
    }
    for s in &report.skipped {
        tracing::warn!(list = %s, "optional list file is absent; skipped");
    }
}

fn run(config_path: &Path) -> Result<ExitCode> {
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let path_for_admin = config_path.to_owned();
        let path = config_path.to_owned();
        let config = tokio::task::spawn_blocking(move || hedgerow_config::load(&path))
            .await
            .context("configuration reader stopped")?
            .map_err(hedgerow_policy::PolicyError::Config)?;
        let state_dir = config.server.state_dir.clone();
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating state directory {}", state_dir.display()))?;
        // Before anything in the state directory is touched: one appliance per state directory.
        let pid_file = pidfile::PidFile::acquire(&state_dir)?;
        // A fresh install has no copy of its downloaded lists yet: get them first.
        hedgerow_lists::prime(&config, std::time::Duration::from_secs(60)).await;
        let path = config_path.to_owned();
        let handle = tokio::task::spawn_blocking(move || PolicyHandle::from_config(&path, config))
            .await
            .context("policy loader stopped")??;
        let handle = Arc::new(handle);
        let snap = handle.snapshot();
        announce(&snap);

        let config = snap.config().clone();
        let store = tokio::task::spawn_blocking(move || logs::open_store(&config))
            .await
            .context("store opener stopped")??;
        let store = Arc::new(store);
        illegal_tier_alerts(&snap, &store);
        let api_tcp = api_tcp(snap.config());
        // Not kept: a reload must be able to free the first snapshot's lists.
        drop(snap);
        let clock = clock()?;
        let notes = Arc::new(hedgerow_model::BlockNotes::new(4096));
        let page_handle = handle.clone();
        let services =
            services::Services::start(handle, store.clone(), clock.clone(), notes.clone()).await?;
        let (resolver, recorder) = (services.resolver.clone(), services.recorder.clone());
        let status = status::source(services.handle.clone(), resolver.clone(), recorder.clone());
        let page_tasks = match page_handle.snapshot().config().blockpage {
            Some(_) => {
                let events: Arc<dyn hedgerow_model::EventSink> = recorder.clone();
                let pages = hedgerow_proxy::BlockPages::new(
                    page_handle,
                    events,
                    clock,
                    notes,
                    store.clone(),
                )
                .context("starting the block page server")?;
                let listeners = pages
                    .bind()
                    .await
                    .context("binding the block page server")?;
                for l in &listeners.plain {
                    tracing::info!("listening for block pages (HTTP) on {}", l.local_addr()?);
                }
                for l in &listeners.tls {
                    tracing::info!("listening for block pages (HTTPS) on {}", l.local_addr()?);
                }
                pages.start(listeners)
            }
            None => Vec::new(),
        };
        let services = Arc::new(tokio::sync::Mutex::new(Some(services)));
        let reload: hedgerow_lists::ReloadFn = {
            let s = services.clone();
            Arc::new(move || {
                let s = s.clone();
                Box::pin(async move { reload_now(&s).await })
            })
        };
        if let Some(s) = services.lock().await.as_mut() {
            s.start_lists(reload);
        }
        let admin_tasks = start_admin(
            &path_for_admin,
            &services,
            &store,
            &state_dir,
            api_tcp,
            status,
        )
        .await?;
        let code = serve(&services, &resolver, &recorder).await;
        for t in admin_tasks {
            t.abort();
        }
        for t in page_tasks {
            t.abort();
        }
        let _ = std::fs::remove_file(state_dir.join(admin::API_SOCKET));
        let _ = std::fs::remove_file(state_dir.join(hedgerow_admin::api::RELOAD_KEY));
        if let Some(s) = services.lock().await.take() {
            s.stop().await;
        }
        let r = recorder.clone();
        let _ = tokio::task::spawn_blocking(move || r.stop()).await;
        log_metrics(&resolver, &recorder);
        if let Err(e) = store.flush() {
            tracing::error!("flushing the log store: {e}");
        }
        drop(pid_file);
        code
    })
}

/// The clock the fronts read. `HEDGEROW_TEST_NOW` (an RFC 3339 time) pins it, so end-to-end
/// tests of schedules never wait for a time of day.
fn clock() -> Result<Arc<dyn hedgerow_model::Clock>> {
    match std::env::var("HEDGEROW_TEST_NOW") {
        Ok(text) => {
            let at: jiff::Timestamp = text
                .parse()
                .with_context(|| format!("HEDGEROW_TEST_NOW={text:?}"))?;
            tracing::warn!(%at, "clock pinned by HEDGEROW_TEST_NOW");
            Ok(Arc::new(hedgerow_model::FixedClock(at)))
        }
        Err(_) => Ok(Arc::new(hedgerow_model::SystemClock)),
    }
}

fn log_metrics(resolver: &hedgerow_dns::Resolver, recorder: &hedgerow_store::Recorder) {
    let counters: Vec<String> = resolver
        .metrics()
        .snapshot()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let r = recorder.stats();
    tracing::info!(
        "dns metrics: {} cached={} events_written={} events_dropped={} events_failed={} breaches={}",
        counters.join(" "),
        resolver.cached(),
        r.written,
        r.dropped,
        r.failed,
        r.breaches
    );
}

/// The change-control service, once started: reloads from elsewhere (SIGHUP) ask it to look
/// for hand edits.
static ADMIN: std::sync::OnceLock<Arc<hedgerow_admin::Admin>> = std::sync::OnceLock::new();

/// The API's TCP listener, when `[api]` asks for one: its settings, and the school CA's files
/// when `[proxy]` names them (the certificate is minted from it).
struct ApiTcp {
    api: Option<hedgerow_config::ApiConfig>,
    console: Option<hedgerow_config::ConsoleConfig>,
    timezone: String,
    ca: Option<(PathBuf, PathBuf)>,
}

fn api_tcp(config: &hedgerow_config::Config) -> ApiTcp {
    let ca = config
        .proxy
        .as_ref()
        .and_then(|p| Some((p.ca_cert.clone()?, p.ca_key.clone()?)));
    ApiTcp {
        api: config.api.clone(),
        console: config.console.clone(),
        timezone: config.server.timezone.clone(),
        ca,
    }
}

/// Starts change control: notes hand edits made while the appliance was stopped, serves the
/// API on `STATE/api.sock` (with a new `STATE/reload.key` for the service manager's
/// `hedgerow reload`) and, with `[api] listen`, over TLS; and reverts expired exceptions
/// (checked every second).
async fn start_admin(
    config: &Path,
    services: &Shared,
    store: &Arc<hedgerow_store::Store>,
    state_dir: &Path,
    tcp: ApiTcp,
    status: hedgerow_admin::status::StatusSource,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    // A change is put in force by the same all-or-nothing reload as SIGHUP and `hedgerow
    // reload`. Change control calls it off the async workers (spawn_blocking), so it may wait.
    let shared = services.clone();
    let rt = tokio::runtime::Handle::current();
    let reloader: hedgerow_admin::Reloader =
        Arc::new(move || rt.block_on(reload_services(&shared)));
    let admin = Arc::new(
        hedgerow_admin::Admin::new(store.clone(), config, reloader, clock()?)
            .with_notifier(unreviewed_alerts(config))
            .with_status(status),
    );
    let _ = ADMIN.set(admin.clone());
    let a = admin.clone();
    tokio::task::spawn_blocking(move || a.check_unreviewed())
        .await
        .context("change control stopped")??;
    let key = hedgerow_admin::api::reload_key(state_dir).with_context(|| {
        format!(
            "writing {}",
            state_dir.join(hedgerow_admin::api::RELOAD_KEY).display()
        )
    })?;
    let path = state_dir.join(admin::API_SOCKET);
    let api = hedgerow_admin::api::serve_unix(admin.clone(), &path, Some(&key))
        .with_context(|| format!("binding the API socket {}", path.display()))?;
    tracing::info!("API listening on {}", path.display());
    let mut tasks = vec![api];
    if let Some(handle) = services.lock().await.as_ref().map(|s| s.handle.clone()) {
        tasks.push(reports::spawn_weekly(admin.clone(), handle));
    }
    let ca = tcp.ca.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    if let Some(console) = &tcp.console {
        let started =
            hedgerow_console::start(admin.clone(), console, &tcp.timezone, ca, state_dir).await?;
        tasks.push(started.task);
    }
    if let Some(api) = tcp.api {
        let listen = api.listen;
        let identity = hedgerow_admin::tls::identity(listen, &api.names, ca, state_dir)
            .context("the API's TLS certificate")?;
        let listener = hedgerow_admin::api::bind_tcp(listen)
            .await
            .with_context(|| format!("binding the API listener [api] listen = {listen}"))?;
        let bound = listener.local_addr()?;
        let source = match &identity.source {
            hedgerow_admin::tls::CertSource::SchoolCa => "minted from the school CA".to_owned(),
            hedgerow_admin::tls::CertSource::SelfSigned { path, new: true } => {
                format!("self-signed, made now and kept in {}", path.display())
            }
            hedgerow_admin::tls::CertSource::SelfSigned { path, new: false } => {
                format!("self-signed, kept in {}", path.display())
            }
        };
        tracing::info!(
            "API listening on https://{bound} (TLS certificate for {}, {source}; SHA-256 fingerprint {})",
            identity.names.join(", "),
            identity.fingerprint
        );
        tasks.push(hedgerow_admin::api::serve_tls(
            admin.clone(),
            listener,
            identity.config,
        ));
    }
    let expiry = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let a = admin.clone();
            match tokio::task::spawn_blocking(move || a.expire()).await {
                Ok(Ok(done)) => {
                    for c in done {
                        tracing::info!(
                            change = c.id,
                            "time-limited exception expired and reverted"
                        );
                    }
                }
                Ok(Err(e)) => tracing::error!("expiry check: {e}"),
                Err(e) => tracing::error!("expiry check stopped: {e}"),
            }
        }
    });
    tasks.push(expiry);
    Ok(tasks)
}

/// A hand edit is raised to the approvers and the DSL at once, as a high operational alert on
/// every configured channel, with the change's number and its diff.
fn unreviewed_alerts(config: &Path) -> hedgerow_admin::Notifier {
    let config = config.to_owned();
    let rt = tokio::runtime::Handle::current();
    Arc::new(move |c: &hedgerow_admin::ChangeRequest| {
        // Called off the async workers (change control blocks): reading the file is fine.
        let alerts = hedgerow_config::load(&config).ok().and_then(|c| c.alerts);
        let Some(alerts) = alerts else {
            tracing::warn!(
                change = c.id,
                "no [alerts] configured: the unreviewed change is only in the change list and the audit log"
            );
            return;
        };
        let files: Vec<String> = c
            .files
            .iter()
            .map(|f| f.path.display().to_string())
            .collect();
        let alert = hedgerow_alert::Operational {
            severity: hedgerow_model::Severity::High,
            kind: "unreviewed-change".into(),
            message: format!(
                "The filtering configuration was edited outside change control ({}). It is in force, recorded as unreviewed change #{id}, and needs an approver or the DSL to look at it: `hedgerow change show {id}`, then `hedgerow change approve {id}` to acknowledge it, or revert it with a change.\n\n{}",
                files.join(", "),
                c.preview.diff,
                id = c.id,
            ),
        };
        let now = jiff::Timestamp::now();
        rt.spawn(async move {
            for (channel, e) in hedgerow_alert::send_operational(&alerts, &alert, now).await {
                tracing::error!(channel, "operational alert not sent: {e}");
            }
        });
    })
}

/// The running services, shared by change control (API reloads, applied changes) and the
/// signal loop; `None` once stopping. The lock also keeps two reloads from running at once.
type Shared = Arc<tokio::sync::Mutex<Option<services::Services>>>;

/// Reloads on SIGHUP; the one-line outcome.
async fn reload_now(services: &Shared) -> std::result::Result<String, String> {
    let result = reload_services(services).await;
    // Recorded in the audit log; a reload that took effect may carry edits made by hand:
    // change control records them.
    if let Some(a) = ADMIN.get().cloned() {
        let r = result.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || a.record_signal_reload(&r)).await {
            tracing::error!("recording the reload: {e}");
        }
    }
    result
}

/// The all-or-nothing reload itself. Change control calls this one: the edits it applies are
/// its own, and it holds its records while the reload runs.
async fn reload_services(services: &Shared) -> std::result::Result<String, String> {
    match services.lock().await.as_mut() {
        Some(s) => s.reload().await,
        None => Err("refused: the appliance is stopping".into()),
    }
}

/// `hedgerow reload`: validates the configuration here first, then asks the running appliance
/// through its API. Signed in (`--user`, `--token-file`, `HEDGEROW_TOKEN`) as a technician or
/// approver; else with `STATE/reload.key`, which only the appliance's own user can read: that
/// is how `systemctl reload` (ExecReload, run as the service's user) reaches it, and it can
/// ask for nothing but a reload. Prints the outcome; exits 1 when the appliance refuses.
fn reload(config: &Path, creds: &admin::Creds) -> Result<ExitCode> {
    let parsed = match hedgerow_config::load(config) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!(
                "reload not sent: the configuration has errors; the running policy stays in force"
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let state_dir = &parsed.server.state_dir;
    let sock = state_dir.join(admin::API_SOCKET);
    if std::os::unix::net::UnixStream::connect(&sock).is_err() {
        anyhow::bail!(
            "no appliance answers at {} (is it running? a changed [server] state_dir needs a restart)",
            sock.display()
        );
    }
    let mut client = admin::Client::at(sock.clone(), creds);
    let token = if creds.given() {
        client.token()?
    } else {
        let key = state_dir.join(hedgerow_admin::api::RELOAD_KEY);
        std::fs::read_to_string(&key).map_err(|e| {
            anyhow::anyhow!(
                "sign in to reload: --user NAME, --token-file FILE or HEDGEROW_TOKEN (the service manager uses {}, readable by the appliance's user only: {e})",
                key.display()
            )
        })?
    };
    match admin::call(&sock, "POST", "/api/v1/reload", Some(token.trim()), None)? {
        Ok(v) => {
            println!("{}", v["report"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        Err((_, msg)) => {
            eprintln!("{msg}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// An illegal-tier list enforced from its last good copy is a critical operational problem:
/// it goes to the service log, the audit log and, when alerts are configured, to the DSL
/// and the technician at once.
fn illegal_tier_alerts(snap: &PolicySnapshot, store: &Arc<hedgerow_store::Store>) {
    let problems: Vec<String> = snap
        .report()
        .illegal_kept()
        .map(|(list, reason)| format!("illegal-tier list {list:?}: {reason}"))
        .collect();
    if problems.is_empty() {
        return;
    }
    let now = jiff::Timestamp::now();
    for p in &problems {
        tracing::error!("CRITICAL: {p}");
        if let Err(e) = store.append_audit(now, "hedgerow", "illegal-tier-last-good", p) {
            tracing::error!("audit log: {e}");
        }
    }
    let Some(alerts) = snap.config().alerts.clone() else {
        tracing::error!(
            "CRITICAL: no [alerts] configured: nobody but this log hears that the illegal tier runs on its last good copy"
        );
        return;
    };
    let alert = hedgerow_alert::Operational {
        severity: hedgerow_model::Severity::Critical,
        kind: "illegal-tier-last-good".into(),
        message: format!(
            "{}

The appliance goes on blocking the last good copy of each list named, so nothing is unblocked, but the list files must be restored (or the list download fixed) so that new entries are enforced.",
            problems.join("\n")
        ),
    };
    tokio::spawn(async move {
        for (channel, e) in hedgerow_alert::send_operational(&alerts, &alert, now).await {
            tracing::error!(channel, "operational alert not sent: {e}");
        }
    });
}

fn announce(snap: &PolicySnapshot) {
    log_report(snap.report());
    let stats = snap.matcher().stats();
    tracing::info!(
        domains = stats.domains,
        urls = stats.urls,
        illegal = stats.illegal,
        regexes = stats.regexes,
        phrases = stats.phrases,
        groups = snap.config().groups.len(),
        elapsed_ms = snap.report().elapsed.as_millis() as u64,
        "policy loaded"
    );
}

/// Waits for signals: SIGHUP reloads (off the async workers), SIGINT/SIGTERM stop. Logs the
/// DNS counters every minute.
async fn serve(
    services: &Shared,
    resolver: &hedgerow_dns::Resolver,
    recorder: &hedgerow_store::Recorder,
) -> Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.tick().await;
    tracing::info!("ready");
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = reload_now(services).await;
            }
            _ = tick.tick() => log_metrics(resolver, recorder),
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("stopping");
    Ok(ExitCode::SUCCESS)
}

fn check_config(path: &Path) -> Result<ExitCode> {
    let config = match hedgerow_config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!(
                "{}: {} error(s); configuration rejected",
                path.display(),
                errors.0.len()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let files = config.files.len();
    let snap = match PolicySnapshot::build(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let report = snap.report();
    for r in &report.lists {
        for b in &r.bad_lines {
            println!(
                "warning: {}:{}: skipped bad line: {}",
                r.origin, b.line, b.reason
            );
        }
    }
    for s in &report.skipped {
        println!("warning: list {s:?}: optional file absent, skipped");
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    for (list, reason) in report.illegal_kept() {
        println!("CRITICAL: illegal-tier list {list:?}: {reason}");
    }
    if let Some(gap) = https_gap(snap.config()) {
        println!("warning: {gap}");
    }
    let stats = snap.matcher().stats();
    println!(
        "{}: ok ({files} files, {} groups, {} lists; {} domains, {} URLs, {} illegal-tier entries, {} regexes, {} phrases; {} bad lines skipped; built in {} ms)",
        path.display(),
        snap.config().groups.len(),
        snap.config().lists.len(),
        stats.domains,
        stats.urls,
        stats.illegal,
        stats.regexes,
        stats.phrases,
        report.bad_line_count(),
        report.elapsed.as_millis()
    );
    Ok(ExitCode::SUCCESS)
}

/// Where URL-level illegal-tier entries cannot be enforced over HTTPS: without a school CA the
/// proxy cannot see paths inside TLS, and DNS never sees paths at all.
fn https_gap(config: &hedgerow_config::Config) -> Option<String> {
    let url_lists: Vec<&str> = config
        .lists
        .iter()
        .filter(|l| {
            l.kind == hedgerow_model::ListKind::Illegal
                && l.format == hedgerow_model::ListFormat::Urls
        })
        .map(|l| l.name.as_str())
        .collect();
    if url_lists.is_empty() {
        return None;
    }
    let has_ca = config.proxy.as_ref().is_some_and(|p| p.ca_cert.is_some());
    (!has_ca).then(|| {
        format!(
            "URL-level illegal-tier lists ({}) are enforced on plain HTTP through the proxy only: with no school CA ([proxy] ca_cert/ca_key) the proxy cannot see the paths of HTTPS requests, and DNS never sees paths (their hosts are not blocked whole, as the IWF asks). Configure the school CA to enforce them on HTTPS.",
            url_lists.join(", ")
        )
    })
}

fn lookup(
    config: &Path,
    client: IpAddr,
    at: Option<&str>,
    json: bool,
    target: &str,
) -> Result<ExitCode> {
    let snap = PolicySnapshot::load(config)?;
    let now = match at {
        None => jiff::Timestamp::now(),
        Some(text) => {
            let civil: jiff::civil::DateTime = text.parse().with_context(|| {
                format!("--at {text:?}: expected a local date and time such as 2026-11-23T16:00")
            })?;
            let tz = jiff::tz::TimeZone::get(&snap.config().server.timezone)?;
            civil.to_zoned(tz)?.timestamp()
        }
    };
    let Some(who) = snap.client(client, None) else {
        if json {
            println!(
                "{}",
                serde_json::json!({ "client": client.to_string(), "refused": true })
            );
        } else {
            println!("client {client}: in no configured network; DNS and proxy refuse it");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (kind, verdict) = if target.contains('/') {
        let url = UrlKey::parse(target).with_context(|| format!("{target:?} is not a URL"))?;
        ("url", snap.decide(who.group, Target::Url(&url), now))
    } else {
        let host = Host::parse(target).with_context(|| format!("{target:?} is not a host name"))?;
        ("host", snap.decide(who.group, Target::Host(&host), now))
    };
    // An illegal-tier match withholds what was asked, as every record does.
    let target = if verdict.tier == hedgerow_model::Tier::Illegal {
        verdict
            .rule
            .as_deref()
            .unwrap_or(hedgerow_model::PROTECTED_RULE)
    } else {
        target
    };
    if json {
        let out = serde_json::json!({
            "client": client.to_string(),
            "group": who.group_name,
            "device": who.device.map(|d| d.name.clone()),
            "target": target,
            "kind": kind,
            "verdict": verdict,
        });
        println!("{out}");
    } else {
        println!(
            "client:   {client} (group {}{})",
            who.group_name,
            who.device
                .map(|d| format!(", device {}", d.name))
                .unwrap_or_default()
        );
        println!("{kind}:{}{target}", " ".repeat(9 - kind.len()));
        println!("verdict:  {}", verdict.action);
        println!("tier:     {} ({})", verdict.tier, verdict.tier.explain());
        println!(
            "category: {}",
            verdict
                .category
                .as_ref()
                .map_or("-".into(), |c| format!("{c} ({})", c.display_name()))
        );
        println!("list:     {}", verdict.list.as_deref().unwrap_or("-"));
        println!("rule:     {}", verdict.rule.as_deref().unwrap_or("-"));
    }
    Ok(ExitCode::SUCCESS)
}
