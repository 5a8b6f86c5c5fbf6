//! Debian's rsyslog, started by a test as a SIEM's syslog receiver: an `imtcp` listener on a
//! free loopback port (octet-counted framing is on by default), writing each message to a file
//! twice over: as received, and as rsyslog's RFC 5424 parser read it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `rsyslogd -n`; killed when dropped.
pub struct Rsyslog {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

const PROGRAM: &str = "/usr/sbin/rsyslogd";

impl Rsyslog {
    /// True when rsyslogd can be run (Debian's `rsyslog` package).
    pub fn available() -> bool {
        Path::new(PROGRAM).exists()
    }

    /// Starts rsyslogd and waits (up to 20 s) until its listener accepts connections.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::clickhouse::free_port();
        let d = dir.path().display();
        // `raw.log`: each message as received. `parsed.log`: the fields rsyslog's RFC 5424
        // parser found, separated by `|`.
        let config = format!(
            r#"global(workDirectory="{d}")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\n")
template(name="parsed" type="string" string="%protocol-version%|%pri%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
input(type="imtcp" port="{port}" address="127.0.0.1")
*.* action(type="omfile" file="{d}/raw.log" template="raw")
*.* action(type="omfile" file="{d}/parsed.log" template="parsed")
"#
        );
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(&conf, config).unwrap();
        let log = std::fs::File::create(dir.path().join("rsyslogd.out")).unwrap();
        let child = Command::new(PROGRAM)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {PROGRAM}: {e}"));
        let mut r = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect_timeout(&r.addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("rsyslogd exited ({status}): {}", r.own_log());
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen within 20 s: {}",
                r.own_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn own_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.out")).unwrap_or_default()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The messages received so far, as received.
    pub fn raw(&self) -> Vec<String> {
        lines(&self.file("raw.log"))
    }

    /// The messages received so far as rsyslog parsed them:
    /// `version|pri|time|hostname|app|procid|msgid|structured-data|msg`.
    pub fn parsed(&self) -> Vec<String> {
        lines(&self.file("parsed.log"))
    }

    /// Waits until some message (as received) contains `needle`; all of them then.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let raw = self.raw();
            if raw.iter().any(|l| l.contains(needle)) {
                return Some(raw);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
