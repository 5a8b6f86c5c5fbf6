//! The DSL's console pages end to end (issue 16), through the real binary's console listener
//! with curl (no JavaScript: every step is a link or a form): a breach raised by a real DNS
//! query is triaged in the browser (assign, a false positive refused without its reason,
//! closed, a note after closing, an edit after closing refused), the evidence pack made as
//! HTML and PDF only with the password again, a governor kept out by URL, a form without its
//! CSRF token refused, and a member of staff's site report turned into a change request. And
//! the technician's system page: a failing upstream and the one answering after it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use hedgerow_testkit::{Appliance, Transport, UpstreamDns, query_from};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

fn config(upstream: SocketAddr) -> String {
    format!(
        r#"
[server]
state_dir = "{{dir}}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{upstream}" }}]
rate_limit_qps = 0

[console]
listen = "127.0.0.1:0"

[lists.iwf]
path = "{{dir}}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.extremism]
path = "{{dir}}/extremism.txt"
format = "domains"
category = "extremism"

[groups.ks3]
networks = ["127.0.0.0/24"]
block_categories = ["extremism"]
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"

[[devices]]
name = "Library-PC-3"
ip = "127.0.0.3"

[breaches]
window = "1h"

[[breaches.rules]]
name = "extremism"
categories = ["extremism"]
severity = "high"
"#
    )
}

/// A browser without JavaScript: curl with a cookie jar, against the console over HTTPS; and
/// the authenticator app of whoever signs in on it, once they have set one up.
struct Browser {
    base: String,
    jar: PathBuf,
    _dir: tempfile::TempDir,
    app: std::cell::RefCell<Option<Authenticator>>,
}

/// An authenticator app: codes for its secret, each step used once and in order (the
/// appliance refuses a code again, and accepts one step either side of now).
struct Authenticator {
    totp: totp_rs::TOTP,
    last: Option<u64>,
}

impl Authenticator {
    fn code(&mut self) -> String {
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                / 30
        };
        let step = self.last.map_or(now() - 1, |l| (l + 1).max(now() - 1));
        // Not yet valid (every step up to now+1 used): wait for the clock.
        while step > now() + 1 {
            std::thread::sleep(Duration::from_millis(500));
        }
        self.last = Some(step);
        self.totp.generate(step * 30)
    }
}

struct Page {
    status: u16,
    location: String,
    body: String,
}

impl Browser {
    fn new(console: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            base: format!("https://{console}"),
            jar: dir.path().join("cookies"),
            _dir: dir,
            app: std::cell::RefCell::new(None),
        }
    }

    fn curl(&self, args: &[&str], path: &str) -> Page {
        let out = Command::new("curl")
            .args(["-s", "-k", "-D", "-", "-b"])
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .args(args)
            .arg(format!("{}{path}", self.base))
            .output()
            .expect("curl (Debian package curl) must be installed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let location = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("location: ")
                    .or_else(|| l.strip_prefix("Location: "))
            })
            .unwrap_or("")
            .trim()
            .to_owned();
        Page {
            status,
            location,
            body: body.to_owned(),
        }
    }

    fn get(&self, path: &str) -> Page {
        self.curl(&[], path)
    }

    /// Posts a form (fields urlencoded by curl).
    fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut args = Vec::new();
        for (k, v) in fields {
            args.push("--data-urlencode".to_owned());
            args.push(format!("{k}={v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.curl(&args, path)
    }

    /// The CSRF token in the page's forms.
    fn csrf(page: &Page) -> String {
        let at = page
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field: {}", page.body));
        let rest = &page.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    fn sign_in(&self, name: &str, password: &str) -> String {
        let form = self.get("/signin");
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = Self::csrf(&form);
        let done = self.post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("name", name),
                ("password", password),
                ("next", "/"),
            ],
        );
        assert_eq!(done.status, 303, "signing in as {name}: {}", done.body);
        if done.location == "/signin/authenticator" {
            // The role needs an authenticator: set one up with the key the page shows.
            let page = self.get("/signin/authenticator");
            let marker = "<code id=\"secret\">";
            let at = page.body.find(marker).expect("the key") + marker.len();
            let secret = &page.body[at..at + page.body[at..].find('<').unwrap()];
            let url = format!("otpauth://totp/Hedgerow:{name}?secret={secret}&issuer=Hedgerow");
            let mut app = Authenticator {
                totp: totp_rs::TOTP::from_url(url).unwrap(),
                last: None,
            };
            let code = app.code();
            let confirmed = self.post(
                "/signin/authenticator",
                &[("csrf", &Self::csrf(&page)), ("code", &code)],
            );
            assert_eq!(
                confirmed.status, 303,
                "enrolling {name}: {}",
                confirmed.body
            );
            *self.app.borrow_mut() = Some(app);
        }
        Self::csrf(&self.get("/"))
    }

    /// A code from this browser's authenticator, for re-authentication (none: no app).
    fn code(&self) -> String {
        self.app
            .borrow_mut()
            .as_mut()
            .map(Authenticator::code)
            .unwrap_or_default()
    }
}

/// Keeps a page as a test artefact (`target/tmp/console-cases/NAME.html`), to look at.
fn keep(name: &str, page: &Page) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-cases");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{name}.html")), &page.body);
}

/// Adds an account with a password through the API socket, as the harness's approver.
fn account(app: &Appliance, name: &str, roles: &[&str], password: &str) {
    let admin = app.token("testkit-admin", "approver");
    let out = Command::new("curl")
        .args(["-s", "-f", "--unix-socket"])
        .arg(app.dir().join("state/api.sock"))
        .args(["-H", &format!("Authorization: Bearer {admin}")])
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(json!({ "name": name, "roles": roles, "password": password }).to_string())
        .arg("http://appliance/api/v1/users")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "adding {name}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The appliance on `cfg` with this file's lists, started off the async runtime.
async fn start(cfg: String) -> Appliance {
    tokio::task::spawn_blocking(move || {
        Appliance::start(
            BIN.as_ref(),
            &cfg,
            &[
                ("extremism.txt", "extreme.example\n"),
                ("iwf.txt", "http://iwf-test.invalid/a.html\n"),
            ],
            &[],
        )
    })
    .await
    .unwrap()
}

fn console_addr(app: &Appliance) -> SocketAddr {
    let line = app
        .wait_for("console listening on https://", Duration::from_secs(10))
        .expect("the console started");
    let rest = line.split("console listening on https://").nth(1).unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_the_dsl_triages_a_breach_in_the_console_without_javascript() {
    let up = UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::new(192, 0, 2, 1))
        .start()
        .await;
    let cfg = config(up.addr);
    let app = start(cfg).await;
    let ask = |name: &'static str| {
        let server = app.dns_udp;
        async move {
            query_from(
                IpAddr::from([127, 0, 0, 3]),
                server,
                Transport::Udp,
                name,
                RecordType::A,
                Some(1232),
            )
            .await
            .unwrap()
            .response_code
        }
    };
    assert_eq!(ask("allowed.example").await, ResponseCode::NoError);
    assert_eq!(ask("extreme.example").await, ResponseCode::NXDomain);

    tokio::task::block_in_place(|| {
        let console = console_addr(&app);
        account(&app, "dsl", &["dsl"], "dsl-password-12");
        account(&app, "gov", &["governor"], "gov-password-12");
        account(&app, "teacher", &["staff"], "staff-password-1");

        let dsl = Browser::new(console);
        let csrf = dsl.sign_in("dsl", "dsl-password-12");

        // The inbox shows the breach with its counts, once the store has it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let inbox = loop {
            let p = dsl.get("/breaches");
            if p.body.contains("extreme.example") || Instant::now() > deadline {
                break p;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(inbox.status, 200, "{}", inbox.body);
        keep("inbox", &inbox);
        assert!(
            inbox.body.contains("href=\"/breaches/1\""),
            "{}",
            inbox.body
        );
        assert!(inbox.body.contains("Library-PC-3"), "{}", inbox.body);
        assert!(
            inbox
                .body
                .contains("<strong>1</strong> <span class=\"st-new\">New</span>"),
            "{}",
            inbox.body
        );
        let closed = dsl.get("/breaches?status=closed");
        assert!(closed.body.contains("No breaches here."), "{}", closed.body);

        // The breach: every trigger and the device's browsing either side.
        let deadline = Instant::now() + Duration::from_secs(10);
        let page = loop {
            let p = dsl.get("/breaches/1");
            if p.body.contains("allowed.example") || Instant::now() > deadline {
                break p;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("<strong>extreme.example</strong>"),
            "{}",
            page.body
        );
        assert!(page.body.contains("allowed.example"), "{}", page.body);

        // A form without its CSRF token does nothing; with it, the step is taken.
        let refused = dsl.post("/breaches/1/steps", &[("step", "assign"), ("to", "dsl")]);
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(dsl.get("/breaches/1").body.contains("st-new"));
        let done = dsl.post(
            "/breaches/1/steps",
            &[("csrf", &csrf), ("step", "assign"), ("to", "dsl")],
        );
        assert_eq!(done.status, 303, "{}", done.body);
        assert_eq!(done.location, "/breaches/1");
        let page = dsl.get("/breaches/1");
        assert!(page.body.contains(">Open</span>"), "{}", page.body);
        keep("breach-open", &page);

        // A false positive without its reason is refused, on the page, and nothing changes;
        // with a reason the breach closes.
        let fp = dsl.post(
            "/breaches/1/steps",
            &[
                ("csrf", &csrf),
                ("step", "close"),
                ("outcome", "false-positive"),
            ],
        );
        assert_eq!(fp.status, 400, "{}", fp.body);
        assert!(
            fp.body.contains("a false positive needs a reason"),
            "{}",
            fp.body
        );
        assert!(fp.body.contains(">Open</span>"), "{}", fp.body);
        let done = dsl.post(
            "/breaches/1/steps",
            &[
                ("csrf", &csrf),
                ("step", "close"),
                ("outcome", "false-positive"),
                ("reason", "A history lesson on extremism."),
            ],
        );
        assert_eq!(done.status, 303, "{}", done.body);
        let page = dsl.get("/breaches/1");
        assert!(page.body.contains(">Closed</span>"), "{}", page.body);
        assert!(page.body.contains("A history lesson on extremism."));
        keep("breach-closed", &page);
        assert!(
            !page.body.contains("name=\"step\" value=\"assign\""),
            "no edit forms once closed"
        );

        // Closed: an edit is refused with the reason shown; a note is taken.
        let edit = dsl.post(
            "/breaches/1/steps",
            &[("csrf", &csrf), ("step", "assign"), ("to", "dsl")],
        );
        assert_eq!(edit.status, 400, "{}", edit.body);
        assert!(
            edit.body.contains("is closed: it cannot be edited"),
            "{}",
            edit.body
        );
        let note = dsl.post(
            "/breaches/1/steps",
            &[
                ("csrf", &csrf),
                ("step", "note"),
                ("text", "Head of year told."),
            ],
        );
        assert_eq!(note.status, 303, "{}", note.body);
        let page = dsl.get("/breaches/1");
        assert!(page.body.contains("Head of year told."), "{}", page.body);
        assert!(page.body.contains("added after the breach was closed"));

        // The evidence pack: only with the password again; HTML, and PDF when Chromium is
        // installed.
        let wrong = dsl.post(
            "/breaches/1/evidence",
            &[
                ("csrf", &csrf),
                ("format", "html"),
                ("password", "not-it-at-all"),
            ],
        );
        assert_eq!(wrong.status, 401, "{}", wrong.body);
        let pack = dsl.post(
            "/breaches/1/evidence",
            &[
                ("csrf", &csrf),
                ("format", "html"),
                ("password", "dsl-password-12"),
                ("code", &dsl.code()),
            ],
        );
        assert_eq!(pack.status, 200, "{}", pack.body);
        keep("evidence", &pack);
        assert!(
            pack.body.contains("Breach #1: evidence pack"),
            "{}",
            pack.body
        );
        assert!(pack.body.contains("extreme.example") && pack.body.contains("allowed.example"));
        assert!(pack.body.contains("A history lesson on extremism."));
        if Command::new("chromium").arg("--version").output().is_ok() {
            let pdf = Command::new("curl")
                .args(["-s", "-k", "-b"])
                .arg(&dsl.jar)
                .args(["--data-urlencode", &format!("csrf={csrf}")])
                .args(["--data-urlencode", "format=pdf"])
                .args(["--data-urlencode", "password=dsl-password-12"])
                .args(["--data-urlencode", &format!("code={}", dsl.code())])
                .arg(format!("{}/breaches/1/evidence", dsl.base))
                .output()
                .unwrap();
            assert!(
                pdf.stdout.starts_with(b"%PDF"),
                "{}",
                String::from_utf8_lossy(&pdf.stdout[..pdf.stdout.len().min(400)])
            );
        } else {
            eprintln!("skipping the PDF evidence pack: chromium is not installed");
        }

        // A governor reaches no pupil data by URL; the DSL (above) does.
        let gov = Browser::new(console);
        gov.sign_in("gov", "gov-password-12");
        for path in ["/breaches", "/breaches/1", "/site-reports", "/reviews"] {
            let p = gov.get(path);
            assert_eq!(p.status, 403, "{path}: {}", p.body);
            assert!(!p.body.contains("extreme.example"), "{path}");
        }

        // A member of staff reports a site; the DSL turns it into a change request; the
        // reporter sees it.
        let staff = Browser::new(console);
        let staff_csrf = staff.sign_in("teacher", "staff-password-1");
        let form = staff.get("/report-site");
        assert_eq!(form.status, 200, "{}", form.body);
        let bad = staff.post(
            "/report-site",
            &[
                ("csrf", &staff_csrf),
                ("url", "games.example"),
                ("reason", " "),
            ],
        );
        assert_eq!(bad.status, 400, "{}", bad.body);
        let sent = staff.post(
            "/report-site",
            &[
                ("csrf", &staff_csrf),
                ("url", "https://games.example/play"),
                ("reason", "Year 8 play it in lessons"),
            ],
        );
        assert_eq!(sent.status, 303, "{}", sent.body);
        assert_eq!(sent.location, "/report-site?sent=1");
        let mine = staff.get(&sent.location);
        keep("report-site", &mine);
        assert!(mine.body.contains("Waiting for the DSL"), "{}", mine.body);
        assert_eq!(staff.get("/site-reports").status, 403);
        assert_eq!(staff.get("/breaches").status, 403);

        let list = dsl.get("/site-reports");
        assert!(
            list.body.contains("https://games.example/play"),
            "{}",
            list.body
        );
        let raised = dsl.post(
            "/site-reports/1/change",
            &[
                ("csrf", &csrf),
                ("groups", "ks3"),
                ("entry", "games.example"),
            ],
        );
        assert_eq!(raised.status, 303, "{}", raised.body);
        keep("site-reports", &list);
        let shown = dsl.get("/site-reports/1");
        assert!(shown.body.contains("href=\"/changes/"), "{}", shown.body);
        let mine = staff.get("/report-site");
        assert!(
            mine.body.contains("A change to block it was raised"),
            "{}",
            mine.body
        );
    });
}

/// The technician's system page (issue 16: upstream health) without JavaScript: the first
/// upstream never answers and the second does, a real cache miss is answered by failover, and
/// `/system` names the first as failing (timed out) with an alert at the top and the second
/// as answering, in the upstreams table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_the_system_page_shows_a_failing_upstream_and_the_one_answering() {
    let (hole, _hole) = hedgerow_testkit::black_hole().await;
    let up = UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::new(192, 0, 2, 1))
        .start()
        .await;
    let one = format!("upstreams = [{{ address = \"{}\" }}]", up.addr);
    let two = format!(
        "upstreams = [{{ address = \"{hole}\" }}, {{ address = \"{}\" }}]",
        up.addr
    );
    let cfg = config(up.addr).replace(&one, &two);
    assert!(cfg.contains(&two));
    let app = start(cfg).await;
    let m = query_from(
        IpAddr::from([127, 0, 0, 3]),
        app.dns_udp,
        Transport::Udp,
        "allowed.example",
        RecordType::A,
        Some(1232),
    )
    .await
    .unwrap();
    assert_eq!(m.response_code, ResponseCode::NoError);

    tokio::task::block_in_place(|| {
        let console = console_addr(&app);
        account(&app, "tech", &["technician"], "tech-password-12");
        let tech = Browser::new(console);
        tech.sign_in("tech", "tech-password-12");
        let page = tech.get("/system");
        keep("system", &page);
        assert_eq!(page.status, 200, "{}", page.body);
        let body = &page.body;
        assert!(
            body.contains("role=\"alert\"><p>1 upstream resolver(s) failing"),
            "{body}"
        );
        // One row per upstream, in order: the dead one failing, timed out, no answers; the
        // live one answering its one query.
        let rows: Vec<&str> = body
            .split("<tr><td><code>")
            .filter(|r| r.starts_with(&hole.to_string()) || r.starts_with(&up.addr.to_string()))
            .collect();
        assert_eq!(rows.len(), 2, "{body}");
        let (dead, live) = (rows[0], rows[1]);
        assert!(dead.starts_with(&hole.to_string()), "{dead}");
        assert!(
            dead.contains("<span class=\"badge st-failed\">failing</span></td><td class=\"num\">0</td><td class=\"num\">1</td><td>never</td><td>timed out (failing since"),
            "{dead}"
        );
        assert!(
            live.contains("<span class=\"badge st-applied\">answering</span></td><td class=\"num\">1</td><td class=\"num\">0</td><td>"),
            "{live}"
        );
        assert!(live.contains(" ms</td></tr>"), "the latency: {live}");
    });
}
