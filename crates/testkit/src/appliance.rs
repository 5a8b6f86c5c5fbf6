//! Runs the real `hedgerow` binary with a test configuration.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type Lines = Arc<(Mutex<Vec<String>>, Condvar)>;

/// A running appliance in a temporary folder; killed when dropped.
pub struct Appliance {
    child: Child,
    bin: PathBuf,
    dir: tempfile::TempDir,
    lines: Lines,
    pub dns_udp: SocketAddr,
    pub dns_tcp: SocketAddr,
    /// The web proxy's address, when the configuration has a `[proxy]`.
    pub proxy: Option<SocketAddr>,
    /// The web console's address, when the configuration has a `[console]` (HTTPS; see
    /// [`Self::console_url`]).
    pub console: Option<SocketAddr>,
    /// API tokens made by [`Self::token`], by account name.
    tokens: Mutex<HashMap<String, String>>,
    /// Whether [`Self::stop`] has stopped it.
    stopped: bool,
}

/// The account the harness signs in with to make others (the first account, an approver).
const HARNESS_ADMIN: &str = "testkit-admin";
const HARNESS_PASSWORD: &str = "testkit-admin-password";
/// The account `cli` reads pupil-level records as (`logs`, `breaches`, `reviews`, `export`).
const HARNESS_READER: (&str, &str) = ("testkit-dsl", "dsl,technician");

impl Appliance {
    /// Writes `files` and `config` (as `hedgerow.toml`) into a new temporary folder, with
    /// `{dir}` replaced by that folder's path, and runs `bin run --config …` with `env` set. Waits
    /// (up to 60 s) for the "ready" line and reads the DNS listener addresses from the log.
    pub fn start(bin: &Path, config: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Self {
        Self::start_with(Command::new(bin), bin, config, files, env)
    }

    /// As [`Self::start`], inside the network namespace `netns`. The listener addresses in
    /// `dns_udp` and the others are the namespace's; the CLI (`logs`, …) still reaches the
    /// appliance through its API socket.
    pub fn start_in(
        netns: &crate::Netns,
        bin: &Path,
        config: &str,
        files: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Self {
        let program = bin.to_str().unwrap();
        Self::start_with(netns.command(program), bin, config, files, env)
    }

    fn start_with(
        mut cmd: Command,
        bin: &Path,
        config: &str,
        files: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fill = |s: &str| s.replace("{dir}", &dir.path().display().to_string());
        for (name, text) in files {
            std::fs::write(dir.path().join(name), fill(text)).unwrap();
        }
        std::fs::write(dir.path().join("hedgerow.toml"), fill(config)).unwrap();
        cmd.arg("run")
            .arg("--config")
            .arg(dir.path().join("hedgerow.toml"))
            .env("HEDGEROW_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let lines: Lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let (lock, cv) = &*lines;
                    lock.lock().unwrap().push(line);
                    cv.notify_all();
                }
            });
        }
        let mut app = Self {
            child,
            bin: bin.to_path_buf(),
            dir,
            lines,
            dns_udp: ([127, 0, 0, 1], 0).into(),
            dns_tcp: ([127, 0, 0, 1], 0).into(),
            proxy: None,
            console: None,
            tokens: Mutex::new(HashMap::new()),
            stopped: false,
        };
        if app.wait_for("ready", Duration::from_secs(60)).is_none() {
            panic!("appliance did not become ready:\n{}", app.logs());
        }
        app.dns_udp = app.listener("listening for DNS/UDP on ");
        app.dns_tcp = app.listener("listening for DNS/TCP on ");
        app.proxy = app
            .listeners("listening for HTTP proxy on ")
            .first()
            .copied();
        app.console = app.console_listener();
        app
    }

    /// The console's address from its line, `console listening on https://ADDR/ (…`.
    fn console_listener(&self) -> Option<SocketAddr> {
        let lines = self.lines.0.lock().unwrap();
        lines
            .iter()
            .filter_map(|l| l.split("console listening on https://").nth(1))
            .find_map(|rest| rest.split('/').next()?.parse().ok())
    }

    /// `https://ADDR` + `path` on the console; panics when the configuration has no
    /// `[console]`.
    pub fn console_url(&self, path: &str) -> String {
        let addr = self
            .console
            .expect("the appliance serves no console: its configuration has no [console]");
        format!("https://{addr}{path}")
    }

    fn listener(&self, prefix: &str) -> SocketAddr {
        let line = self
            .wait_for(prefix, Duration::from_secs(1))
            .unwrap_or_default();
        let Some(rest) = line.split(prefix).nth(1) else {
            return ([127, 0, 0, 1], 0).into();
        };
        rest.split_whitespace()
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| ([127, 0, 0, 1], 0).into())
    }

    /// Every address logged after `prefix` (such as `listening for DNS/UDP on `).
    pub fn listeners(&self, prefix: &str) -> Vec<SocketAddr> {
        self.lines
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.split(prefix).nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect()
    }

    /// The first log line containing `needle`, waiting up to `timeout` for it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_for_nth(needle, 1, timeout)
    }

    /// The `n`th log line containing `needle`, waiting up to `timeout`.
    pub fn wait_for_nth(&self, needle: &str, n: usize, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.lines;
        let mut lines = lock.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().filter(|l| l.contains(needle)).nth(n - 1) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = cv.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// Everything logged so far.
    pub fn logs(&self) -> String {
        self.lines.0.lock().unwrap().join("\n")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hedgerow.toml")
    }

    /// Replaces a file in the appliance's folder (`{dir}` is filled in as at start).
    pub fn write_file(&self, name: &str, text: &str) {
        let text = text.replace("{dir}", &self.dir.path().display().to_string());
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, self.dir.path().join(name)).unwrap();
    }

    /// Sends SIGHUP (reload).
    pub fn sighup(&self) {
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Stops the appliance with SIGTERM and waits for it; its folder stays until drop.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        self.stopped = true;
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `hedgerow SUBCOMMAND --config <this appliance's config> ARGS…` and returns its
    /// output (the subcommand talks to this appliance through its API socket). `logs`,
    /// `breaches`, `reviews` and `export` sign in as a DSL account the harness makes (see
    /// [`Self::token`]); anything else runs without signing in (`reload` then uses the
    /// appliance's reload key, as the service manager does).
    pub fn cli(&self, subcommand: &[&str], args: &[&str]) -> std::process::Output {
        let reads_records = matches!(
            subcommand.first(),
            Some(&("logs" | "breaches" | "reviews" | "export"))
        );
        if reads_records && let Some(token) = self.reader_token() {
            return self.cli_as(&token, subcommand, args);
        }
        self.run_cli(None, "", subcommand, args)
    }

    /// The token [`Self::cli`] reads pupil-level records with (a DSL and technician account),
    /// for tests that run the binary themselves; `None` once stopped (the commands then open
    /// the store themselves).
    pub fn reader_token(&self) -> Option<String> {
        (!self.stopped).then(|| self.token(HARNESS_READER.0, HARNESS_READER.1))
    }

    /// Where the harness keeps the tokens it made, so that an appliance started again on the
    /// same state directory (whose store holds the accounts) signs in with them:
    /// `STATE/testkit-tokens.json`, `STATE` read from the configuration's `state_dir`.
    fn token_file(&self) -> Option<PathBuf> {
        let config = std::fs::read_to_string(self.config_path()).ok()?;
        let line = config
            .lines()
            .find(|l| l.trim_start().starts_with("state_dir"))?;
        let value = line.split('"').nth(1)?;
        let dir = Path::new(value);
        let dir = if dir.is_relative() {
            self.dir.path().join(dir)
        } else {
            dir.to_owned()
        };
        Some(dir.join("testkit-tokens.json"))
    }

    /// As [`Self::cli`], signed in with the API token `token` (`HEDGEROW_TOKEN`).
    pub fn cli_as(&self, token: &str, subcommand: &[&str], args: &[&str]) -> std::process::Output {
        self.run_cli(Some(token), "", subcommand, args)
    }

    fn run_cli(
        &self,
        token: Option<&str>,
        stdin: &str,
        subcommand: &[&str],
        args: &[&str],
    ) -> std::process::Output {
        let mut cmd = Command::new(&self.bin);
        cmd.args(subcommand)
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env_remove("HEDGEROW_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(t) = token {
            cmd.env("HEDGEROW_TOKEN", t);
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        child.wait_with_output().unwrap()
    }

    /// An API token for the account `name` holding `roles` (comma-separated: technician, dsl,
    /// deputy-dsl, approver, governor, staff), made through the CLI on first use and kept. To make
    /// accounts the harness signs in as the appliance's first account (`testkit-admin`, an
    /// approver), so a test that makes its own first account must sign in with its own tokens
    /// ([`Self::cli_as`]) instead.
    pub fn token(&self, name: &str, roles: &str) -> String {
        let mut tokens = self.tokens.lock().unwrap();
        let file = self.token_file();
        if tokens.is_empty()
            && let Some(kept) = file.as_ref().and_then(|f| std::fs::read(f).ok())
        {
            *tokens = serde_json::from_slice(&kept).unwrap_or_default();
        }
        if let Some(t) = tokens.get(name) {
            return t.clone();
        }
        let keep = |tokens: &HashMap<String, String>| {
            if let Some(f) = &file {
                let _ = std::fs::write(f, serde_json::to_vec(tokens).unwrap());
            }
        };
        let json = |out: std::process::Output, what: &str| -> serde_json::Value {
            assert!(
                out.status.success(),
                "{what} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
        };
        let admin = match tokens.get(HARNESS_ADMIN) {
            Some(t) => t.clone(),
            None => {
                let stdin = format!("{HARNESS_PASSWORD}\n");
                json(
                    self.run_cli(
                        None,
                        &stdin,
                        &["user", "add", HARNESS_ADMIN, "--roles", "approver"],
                        &["--json"],
                    ),
                    "making the harness's first account (does this appliance have accounts already? then sign in with cli_as)",
                );
                let v = json(
                    self.run_cli(
                        None,
                        &stdin,
                        &["user", "token", HARNESS_ADMIN, "--user", HARNESS_ADMIN],
                        &["--json"],
                    ),
                    "the harness's token",
                );
                let t = v["token"].as_str().unwrap().to_owned();
                tokens.insert(HARNESS_ADMIN.to_owned(), t.clone());
                keep(&tokens);
                t
            }
        };
        if name == HARNESS_ADMIN {
            return admin;
        }
        json(
            self.run_cli(
                Some(&admin),
                "",
                &["user", "add", name, "--roles", roles, "--no-password"],
                &["--json"],
            ),
            "making an account",
        );
        let v = json(
            self.run_cli(Some(&admin), "", &["user", "token", name], &["--json"]),
            "an account's token",
        );
        let t = v["token"].as_str().unwrap().to_owned();
        tokens.insert(name.to_owned(), t.clone());
        keep(&tokens);
        t
    }

    /// Makes the account `name` holding `roles` (comma-separated) with the password
    /// `password`, for signing in to the console, through the CLI as the harness's first
    /// account (see [`Self::token`]).
    pub fn account(&self, name: &str, roles: &str, password: &str) {
        let admin = self.token(HARNESS_ADMIN, "approver");
        let out = self.run_cli(
            Some(&admin),
            &format!("{password}\n"),
            &["user", "add", name, "--roles", roles],
            &["--json"],
        );
        assert!(
            out.status.success(),
            "making the account {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Access events as JSON lines from `hedgerow logs --format json`, waiting up to
    /// `timeout` for at least `at_least` of them.
    pub fn events(&self, at_least: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.cli(&["logs"], &["--format", "json", "--limit", "1000000"]);
            assert!(
                out.status.success(),
                "hedgerow logs failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect();
            if lines.len() >= at_least || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
