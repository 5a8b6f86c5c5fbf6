//! Debian's dnsmasq, started by a test as the school router that forwards DNS to Hedgerow.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type Lines = Arc<(Mutex<Vec<String>>, Condvar)>;

/// A running dnsmasq (no configuration file, no cache, no hosts or resolv.conf, logging to
/// stderr); killed when dropped.
pub struct Dnsmasq {
    child: Child,
    lines: Lines,
}

impl Dnsmasq {
    /// True when `dnsmasq` can be run.
    pub fn available() -> bool {
        Command::new(program())
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Starts `dnsmasq ARGS…` (inside `netns` when given) and waits for it to start.
    pub fn start(netns: Option<&crate::Netns>, args: &[String]) -> Self {
        let mut cmd = match netns {
            Some(ns) => ns.command(program()),
            None => Command::new(program()),
        };
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--cache-size=0",
            "--log-facility=-",
            "--log-queries=extra",
            "--pid-file=",
            "--bind-interfaces",
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting dnsmasq: {e}"));
        let lines: Lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        if let Some(pipe) = child.stderr.take() {
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
        let d = Dnsmasq { child, lines };
        // It binds its sockets before it says so.
        if !d.wait_for("started, version", Duration::from_secs(10)) {
            panic!("dnsmasq did not start:\n{}", d.logs());
        }
        d
    }

    fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.lines;
        let mut lines = lock.lock().unwrap();
        loop {
            if lines.iter().any(|l| l.contains(needle)) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            lines = cv.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.lines.0.lock().unwrap().join("\n")
    }
}

/// Debian installs dnsmasq in /usr/sbin, which may not be on a user's PATH.
fn program() -> &'static str {
    const SBIN: &str = "/usr/sbin/dnsmasq";
    if std::path::Path::new(SBIN).is_file() {
        SBIN
    } else {
        "dnsmasq"
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
