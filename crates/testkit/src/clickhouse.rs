//! Debian's ClickHouse server (18.16 in bookworm), started by a test on a free loopback port
//! with a configuration and data folder of its own, in the foreground.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `clickhouse-server`; killed when dropped.
pub struct ClickHouse {
    child: Child,
    /// Its HTTP interface.
    pub http: SocketAddr,
    dir: tempfile::TempDir,
}

const PROGRAM: &str = "/usr/sbin/clickhouse-server";

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl ClickHouse {
    /// True when the server can be run (Debian's `clickhouse-server` package).
    pub fn available() -> bool {
        Path::new(PROGRAM).exists()
    }

    /// Starts the server (HTTP only, on `127.0.0.1`, user `default` with no password, time
    /// zone UTC) and waits until it answers, up to 60 s.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <http_port>{port}</http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <timezone>UTC</timezone>
  <mark_cache_size>5368709</mark_cache_size>
  <max_concurrent_queries>20</max_concurrent_queries>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <profiles><default></default></profiles>
  <quotas><default></default></quotas>
</yandex>
"#
        );
        let path = dir.path().join("config.xml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(PROGRAM)
            .arg(format!("--config-file={}", path.display()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {PROGRAM}: {e}"));
        let mut server = Self {
            child,
            http: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if server.try_query("SELECT 1").is_ok_and(|t| t.trim() == "1") {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("clickhouse-server exited ({status}): {}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "clickhouse-server did not answer within 60 s: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its `http://127.0.0.1:PORT` URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The server's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs `sql` (the body of a POST to `/`); its answer, or panics with ClickHouse's error.
    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql)
            .unwrap_or_else(|e| panic!("ClickHouse query {sql:?}: {e}"))
    }

    /// Runs `sql`; the answer on HTTP 200, else the status line and body.
    pub fn try_query(&self, sql: &str) -> Result<String, String> {
        let mut s = TcpStream::connect_timeout(&self.http, Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "POST / HTTP/1.0\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            self.http,
            sql.len()
        );
        s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
        s.write_all(sql.as_bytes()).map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") {
            Ok(body.to_owned())
        } else {
            Err(format!("{}: {body}", head.lines().next().unwrap_or("")))
        }
    }

    /// Runs each `;`-separated statement of `script` (such as a schema file), skipping `--`
    /// comment lines.
    pub fn run_script(&self, script: &str) {
        let text: String = script
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        for statement in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            self.query(statement);
        }
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
