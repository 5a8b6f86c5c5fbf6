//! Issue 16, the safeguarding console in a real browser: the real `hedgerow` binary on port 0
//! with its console on HTTPS (a self-signed certificate), driven by headless Chromium through
//! WebDriver (`hedgerow_testkit::Browser`). Each test signs in as the school's people do, with
//! the form; what they do is checked through the appliance's other doors too (a real DNS
//! query answered differently after a change is approved, a breach raised by a real DNS query,
//! a search term sent through the real proxy).
//!
//! Screenshots of every page visited land in `target/console-screenshots/`; axe-core checks
//! each main page for WCAG 2.2 AA.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hedgerow_testkit::{Appliance, Browser, Origin, RunningUpstream, Transport, UpstreamDns};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

/// Everyone's password in these tests (the console asks for at least 10 characters).
const PASSWORD: &str = "correct horse battery";

/// A pupil's device (Library-PC-3, in `pupils`).
const PUPIL: [u8; 4] = [127, 0, 0, 1];

fn config(upstream: SocketAddr, state: &Path) -> String {
    format!(
        r#"
[server]
state_dir = "{state}"
timezone = "Europe/London"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{upstream}" }}]
rate_limit_qps = 0

[proxy]
listen = ["127.0.0.1:0"]
allow_destinations = ["127.0.0.0/8"]

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

[lists.games]
path = "{{dir}}/games.txt"
format = "domains"
category = "games"

[groups.pupils]
networks = ["127.0.0.1/32", "127.0.0.2/32"]
block_categories = ["extremism", "games"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"

[groups.staff]
networks = ["127.0.0.4/32"]
block_categories = ["extremism"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"

[[devices]]
name = "Library-PC-3"
ip = "127.0.0.1"
user = "library"

[breaches]
window = "1h"

[[breaches.rules]]
name = "extremism"
categories = ["extremism"]
severity = "high"
"#,
        state = state.display()
    )
}

const FILES: [(&str, &str); 3] = [
    ("iwf.txt", "http://iwf-test.invalid/a.html\n"),
    ("extremism.txt", "extreme-test.example\n"),
    ("games.txt", "games-test.example\n"),
];

/// The school's people: a DSL, a technician, an approver and a governor.
const DSL: (&str, &str) = ("jo-dsl", "dsl");
const TECHNICIAN: (&str, &str) = ("sam-tech", "technician");
const APPROVER: (&str, &str) = ("kim-head", "approver");
const GOVERNOR: (&str, &str) = ("pat-governor", "governor");

struct Rig {
    app: Appliance,
    origin: Origin,
    /// Each account's authenticator, as its phone would hold it, once enrolled in the console.
    phones: Mutex<HashMap<String, Phone>>,
    _up: RunningUpstream,
    _state: tempfile::TempDir,
}

async fn rig() -> Rig {
    let up = UpstreamDns::new()
        .a("games-test.example", Ipv4Addr::LOCALHOST)
        .a("www.google.com", Ipv4Addr::LOCALHOST)
        .a("allowed-test.example", Ipv4Addr::LOCALHOST)
        .start()
        .await;
    let origin = Origin::http().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = config(up.addr, state.path());
    let app = tokio::task::spawn_blocking(move || {
        let app = Appliance::start(BIN.as_ref(), &cfg, &FILES, &[]);
        for (name, roles) in [DSL, TECHNICIAN, APPROVER, GOVERNOR] {
            app.account(name, roles, PASSWORD);
        }
        app
    })
    .await
    .unwrap();
    assert!(app.console.is_some(), "no console line:\n{}", app.logs());
    Rig {
        app,
        origin,
        phones: Mutex::new(HashMap::new()),
        _up: up,
        _state: state,
    }
}

impl Rig {
    fn url(&self, path: &str) -> String {
        self.app.console_url(path)
    }

    /// A DNS query for `name` from `from`; its response code.
    async fn dns(&self, from: [u8; 4], name: &str) -> ResponseCode {
        hedgerow_testkit::query_from(
            IpAddr::from(from),
            self.app.dns_udp,
            Transport::Udp,
            name,
            RecordType::A,
            Some(1232),
        )
        .await
        .expect("a DNS answer")
        .response_code
    }

    /// Searches Google through the proxy from the pupil's device; the status.
    async fn search(&self, terms: &str) -> u16 {
        let proxy = self.app.proxy.expect("proxy address");
        let url = format!(
            "http://www.google.com:{}/search?q={}",
            self.origin.addr.port(),
            url_encode(terms)
        );
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(["--max-time", "10", "--interface", "127.0.0.1"])
                .args(["-x", &format!("http://{proxy}"), "--noproxy", ""])
                .arg(&url)
                .output()
                .expect("curl must be installed");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0)
        })
        .await
        .unwrap()
    }

    /// Signs `who` in on `b` with the sign-in form (and the code from their authenticator,
    /// set up in the console at their first sign-in when their role needs one) and checks
    /// the home page greets them.
    async fn sign_in(&self, b: &Browser, who: (&str, &str)) {
        b.goto(&self.url("/signin")).await;
        b.fill("Account name", who.0).await;
        b.fill("Password", PASSWORD).await;
        if let Some(code) = self.code(who.0).await {
            b.fill("Authenticator code", &code).await;
        }
        b.click_button("Sign in").await;
        if b.url().await.ends_with("/signin/authenticator") {
            self.enrol(b, who.0).await;
        }
        let text = b.text().await;
        assert!(
            text.contains(&format!("Welcome, {}", who.0)),
            "{} is not signed in: {} {text}",
            who.0,
            b.url().await
        );
    }

    /// On the authenticator set-up page: reads the key shown, keeps it as `name`'s phone
    /// would, and confirms with the code it gives.
    async fn enrol(&self, b: &Browser, name: &str) {
        let secret = b.text_of("#secret").await;
        let phone = Phone::new(&secret, name);
        self.phones.lock().unwrap().insert(name.to_owned(), phone);
        let code = self.code(name).await.unwrap();
        b.fill("Code from the app", &code).await;
        b.click_button("Confirm and continue").await;
    }

    /// The next code `name`'s authenticator gives (`None`: not set up), waiting when the
    /// codes the appliance would take now have all been used (it takes each step once).
    async fn code(&self, name: &str) -> Option<String> {
        loop {
            let wait = {
                let mut phones = self.phones.lock().unwrap();
                let phone = phones.get_mut(name)?;
                match phone.next() {
                    Ok(code) => return Some(code),
                    Err(wait) => wait,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// An authenticator app: TOTP (SHA-1, 6 digits, 30 s) from the key the console showed.
struct Phone {
    totp: totp_rs::TOTP,
    /// The last step a code was given for: the appliance refuses a step twice.
    last: Option<u64>,
}

impl Phone {
    fn new(base32: &str, account: &str) -> Self {
        let secret = totp_rs::Secret::Encoded(base32.trim().to_owned())
            .to_bytes()
            .unwrap_or_else(|e| panic!("the key shown is not base32 ({base32:?}): {e:?}"));
        let totp = totp_rs::TOTP::new(
            totp_rs::Algorithm::SHA1,
            6,
            1,
            30,
            secret,
            Some("Hedgerow".into()),
            account.into(),
        )
        .unwrap();
        Self { totp, last: None }
    }

    /// The code for the next step the appliance takes (now or the next step, which it allows
    /// for clock skew), or how long to wait for one.
    fn next(&mut self) -> Result<String, Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let step = (now / 30).max(self.last.map_or(0, |l| l + 1));
        if step > now / 30 + 1 {
            return Err(Duration::from_secs((step - 1) * 30 - now + 1));
        }
        self.last = Some(step);
        Ok(self.totp.generate(step * 30))
    }

    /// A code for now that is certainly wrong (another step's, far away).
    fn wrong(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        self.totp.generate(now - 3600)
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Waits up to 10 s for `f` to hold.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fills the "Propose a change" form (shown in `b`) to allow `site` for the pupils, low risk.
async fn fill_allow(b: &Browser, site: &str) {
    b.select("What to change", "Allow a site (or URL)").await;
    b.check("pupils", true).await;
    b.fill("Site or URL", site).await;
    b.fill(
        "Why is this change needed?",
        "Year 6 coding club uses its puzzles",
    )
    .await;
    b.check("Low", true).await;
    b.fill(
        "Why that rating?",
        "Puzzle games only; a teacher supervises",
    )
    .await;
}

/// Screenshots the page shown in `b` as `name` and checks axe-core finds nothing on it (in a
/// browser with JavaScript on: axe-core is script; with it off, the screenshot only).
async fn accessible(b: &Browser, name: &str) {
    let path = b.screenshot(name).await;
    if !b.javascript() {
        return;
    }
    let found = b.axe().await;
    assert!(
        found.is_empty(),
        "{name} ({}, {}): {}",
        b.url().await,
        path.display(),
        found
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
}

/// The session cookie's name (`__Host-`: HTTPS only, this host only, path /).
const SESSION: &str = "__Host-hedgerow";

/// A session id planted before sign-in (by an attacker who set the cookie, or one left from an
/// earlier sign-in) is never the one after: sign-in always issues a new session, and the
/// planted id signs nobody in. The twin: the id the console issued does sign the browser in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_session_fixation_refused() {
    let r = rig().await;
    let (b, attacker) = tokio::join!(
        Browser::start("fixation"),
        Browser::start("fixation-attacker")
    );
    // The attacker gets a real pre-session from the sign-in page and plants it, with a
    // session id of their choosing, in the victim's browser.
    attacker.goto(&r.url("/signin")).await;
    let pre = attacker
        .cookie("__Host-hedgerow-pre")
        .await
        .expect("a pre-session cookie from the sign-in page");
    b.goto(&r.url("/signin")).await;
    let planted = "0123456789abcdef0123456789abcdef0123456789abcdef";
    b.set_cookie(SESSION, planted).await;
    b.set_cookie("__Host-hedgerow-pre", &pre).await;
    assert_eq!(b.cookie(SESSION).await.as_deref(), Some(planted));
    let pre = Some(pre);
    r.sign_in(&b, DSL).await;
    let first = b
        .cookie(SESSION)
        .await
        .expect("a session cookie after sign-in");
    assert_ne!(first, planted, "the planted session id was kept");
    assert_ne!(
        Some(&first),
        pre.as_ref(),
        "the pre-session id became the session"
    );

    // Signing in again in the same browser (already signed in) gives yet another id.
    r.sign_in(&b, DSL).await;
    let second = b.cookie(SESSION).await.unwrap();
    assert_ne!(second, first, "a second sign-in kept the old session id");

    // The attacker's pre-session did not become signed in with the victim's sign-in.
    attacker.goto(&r.url("/")).await;
    assert!(
        attacker.url().await.contains("/signin"),
        "the planted pre-session opened {}",
        attacker.url().await
    );
    // Nor does the planted session id sign anybody in.
    attacker.set_cookie(SESSION, planted).await;
    attacker.goto(&r.url("/")).await;
    assert!(
        attacker.url().await.contains("/signin"),
        "the planted id opened {}",
        attacker.url().await
    );
    // The twin: the id the console issued is a signed-in session.
    attacker.set_cookie(SESSION, &second).await;
    assert_eq!(attacker.visit(&r.url("/")).await, 200);
    assert!(attacker.text().await.contains("Welcome, jo-dsl"));
}

/// A form posted without its CSRF token, or with another session's, is refused with 403 and
/// changes nothing; the same form with its own token works. In a real browser: the hidden
/// field is removed or altered in the page, then the person clicks the button.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_csrf_refused_and_the_right_token_works() {
    let r = rig().await;
    let (tech, other) = tokio::join!(Browser::start("csrf"), Browser::start("csrf-other"));
    r.sign_in(&tech, TECHNICIAN).await;
    r.sign_in(&other, GOVERNOR).await;
    let others_token = other
        .execute(
            "return document.querySelector('input[name=csrf]').value;",
            vec![],
        )
        .await;
    let others_token = others_token.as_str().unwrap().to_owned();

    // Propose a change: the preview, then "Propose this change", whose form is tampered with.
    let preview = async |b: &Browser| {
        b.goto(&r.url("/changes/new")).await;
        fill_allow(b, "games-test.example").await;
        b.click_button("Preview the change").await;
        assert_eq!(b.status().await, 200, "{}", b.text().await);
    };
    let propose_form = "document.querySelector('form[action=\"/changes\"]')";
    for (what, script) in [
        (
            "without a token",
            format!("{propose_form}.querySelector('input[name=csrf]').remove();"),
        ),
        (
            "with another session's token",
            format!(
                "{propose_form}.querySelector('input[name=csrf]').value = {};",
                serde_json::Value::from(others_token.clone())
            ),
        ),
        (
            "with a made-up token",
            format!("{propose_form}.querySelector('input[name=csrf]').value = 'x'.repeat(64);"),
        ),
    ] {
        preview(&tech).await;
        tech.execute(&script, vec![]).await;
        tech.click_button("Propose this change").await;
        assert_eq!(
            tech.status().await,
            403,
            "a form {what}: {}",
            tech.text().await
        );
        assert!(
            tech.text().await.contains("This form was not accepted"),
            "a form {what}: {}",
            tech.text().await
        );
    }
    tech.screenshot("refused").await;
    tech.goto(&r.url("/changes")).await;
    assert!(
        !tech.text().await.contains("games-test.example"),
        "a refused form made a change: {}",
        tech.text().await
    );

    // The twin: the same form with its own token proposes the change.
    preview(&tech).await;
    tech.click_button("Propose this change").await;
    assert_eq!(tech.status().await, 200, "{}", tech.text().await);
    assert!(
        tech.url().await.contains("/changes/"),
        "{}",
        tech.url().await
    );
    assert!(tech.text().await.contains("games-test.example"));
}

/// The technician proposes allowing a blocked site in one browser; the approver, signed in
/// in another at the same time (with JavaScript off, so the flow needs no script), sees it
/// waiting, approves it with their password and applies it; the pupils' DNS answers change
/// only then. The proposer cannot approve their own change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_propose_in_one_session_approve_in_another() {
    let r = rig().await;
    let (tech, head) = tokio::join!(
        Browser::start("changes-technician"),
        Browser::start_without_javascript("changes-approver")
    );
    tokio::join!(r.sign_in(&tech, TECHNICIAN), r.sign_in(&head, APPROVER));
    assert_eq!(
        r.dns(PUPIL, "games-test.example").await,
        ResponseCode::NXDomain
    );

    tech.click_link("Changes").await;
    tech.goto(&r.url("/changes/new")).await;
    accessible(&tech, "new").await;
    fill_allow(&tech, "games-test.example").await;
    tech.click_button("Preview the change").await;
    let preview = tech.text().await;
    assert!(preview.contains("Loosens the filter"), "{preview}");
    accessible(&tech, "preview").await;
    tech.click_button("Propose this change").await;
    let url = tech.url().await;
    let id = url
        .rsplit('/')
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("not on a change's page: {url}"));
    accessible(&tech, "proposed").await;
    // The proposer may not sign their own change.
    assert!(
        tech.button(&format!("Approve change #{id}"))
            .await
            .is_none(),
        "the proposer is offered their own approval"
    );
    // Proposed, not in force.
    assert_eq!(
        r.dns(PUPIL, "games-test.example").await,
        ResponseCode::NXDomain
    );

    // The approver's session, already open, sees it waiting.
    head.click_link("Changes").await;
    assert!(
        head.text().await.contains("games-test.example"),
        "{}",
        head.text().await
    );
    head.goto(&r.url(&format!("/changes/{id}"))).await;
    head.fill("Note (optional)", "Agreed with the DSL").await;
    head.fill("Your password, to confirm", PASSWORD).await;
    let code = r.code(APPROVER.0).await.unwrap();
    head.fill("Authenticator code", &code).await;
    head.click_button(&format!("Approve change #{id}")).await;
    assert_eq!(head.status().await, 200, "{}", head.text().await);
    let shown = head.text().await;
    assert!(shown.contains("kim-head"), "the signature: {shown}");
    accessible(&head, "approved").await;
    if head
        .button(&format!("Apply change #{id} now"))
        .await
        .is_some()
    {
        head.click_button(&format!("Apply change #{id} now")).await;
        assert_eq!(head.status().await, 200, "{}", head.text().await);
    }
    accessible(&head, "applied").await;
    eventually("the pupils' DNS to allow the site", || async {
        r.dns(PUPIL, "games-test.example").await == ResponseCode::NoError
    })
    .await;
    // The twin: the category stays blocked for everything else.
    assert_eq!(
        r.dns(PUPIL, "extreme-test.example").await,
        ResponseCode::NXDomain
    );
    // The technician's page, reloaded, shows the signature.
    tech.goto(&r.url(&format!("/changes/{id}"))).await;
    assert!(tech.text().await.contains("kim-head"));
}

/// The pages that show pupil-level data, by URL: a governor gets 403 on each (and the
/// navigation does not offer them); the DSL gets 200 on each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_a_governor_cannot_reach_pupil_data_by_url() {
    let r = rig().await;
    // A breach and some browsing, so that the pages have something to show.
    assert_eq!(
        r.dns(PUPIL, "extreme-test.example").await,
        ResponseCode::NXDomain
    );
    assert_eq!(r.search("homework help").await, 200);
    let (governor, dsl) = tokio::join!(Browser::start("governor"), Browser::start("dsl"));
    tokio::join!(r.sign_in(&governor, GOVERNOR), r.sign_in(&dsl, DSL));
    let pupil_pages = [
        "/breaches",
        "/breaches/1",
        "/logs",
        "/logs?device=Library-PC-3",
        "/logs/device?name=Library-PC-3",
        "/logs/device?ip=127.0.0.1",
        "/reviews",
    ];
    let nav = governor.all_text("nav a").await;
    for hidden in ["Breaches", "Logs", "Review requests"] {
        assert!(!nav.iter().any(|n| n == hidden), "governor's nav: {nav:?}");
    }
    for path in pupil_pages {
        let status = governor.visit(&r.url(path)).await;
        assert_eq!(status, 403, "governor on {path}: {}", governor.text().await);
        assert!(
            !governor.text().await.contains("extreme-test.example")
                && !governor.text().await.contains("Library-PC-3"),
            "pupil data on the refusal of {path}"
        );
    }
    governor.screenshot("refused").await;
    for path in pupil_pages {
        let status = dsl.visit(&r.url(path)).await;
        assert_eq!(status, 200, "DSL on {path}: {}", dsl.text().await);
    }
}

/// A search term holding markup, sent by a pupil through the real proxy, is shown on the
/// DSL's logs page as the text typed, and nothing in it runs: no script element, no image
/// with an error handler, the flag it would set unset. The twin: an ordinary term is shown
/// in the same table, so the check is on rows that are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_a_search_term_with_script_renders_inert() {
    let r = rig().await;
    let script = "<script>window.hedgerowPwned=1</script>";
    let image = "\"><img src=x onerror=\"window.hedgerowPwned=2\">";
    for term in [script, image, "homework help"] {
        assert_eq!(r.search(term).await, 200, "searching {term}");
    }
    let dsl = Browser::start("xss").await;
    r.sign_in(&dsl, DSL).await;
    dsl.click_link("Logs").await;
    dsl.fill("Site", "google.com").await;
    dsl.click_button("Search").await;
    eventually("the three searches in the logs", || async {
        let text = dsl.text().await;
        if text.contains("homework help") && text.contains(script) && text.contains(image) {
            return true;
        }
        dsl.client().refresh().await.unwrap();
        false
    })
    .await;
    dsl.screenshot("logs").await;
    let inert = dsl
        .execute(
            "return [document.querySelectorAll('script').length, \
                     document.querySelectorAll('img').length, \
                     typeof window.hedgerowPwned];",
            vec![],
        )
        .await;
    assert_eq!(
        inert,
        serde_json::json!([0, 0, "undefined"]),
        "the page ran markup"
    );

    // Searched for by that term, it is in the form's field exactly as typed, and the page
    // is as inert.
    dsl.goto(&r.url("/logs")).await;
    dsl.fill("Search term", script).await;
    dsl.click_button("Search").await;
    assert_eq!(dsl.status().await, 200);
    let value = dsl
        .execute("return document.getElementById('search').value;", vec![])
        .await;
    assert_eq!(value, serde_json::json!(script));
    assert!(dsl.text().await.contains(script), "{}", dsl.text().await);
    let inert = dsl
        .execute(
            "return [document.querySelectorAll('script').length, typeof window.hedgerowPwned];",
            vec![],
        )
        .await;
    assert_eq!(inert, serde_json::json!([0, "undefined"]));
}

/// Every page in each role's navigation (and the sign-in page, and the pages a flow passes
/// through) answers 200, has no WCAG 2.2 AA failure axe-core can find, and is screenshotted
/// to target/console-screenshots/pages-<role>-<page>.png.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_main_pages_pass_axe_and_are_screenshotted() {
    let r = rig().await;
    // Something on every page: a breach, browsing, a proposed change.
    assert_eq!(
        r.dns(PUPIL, "extreme-test.example").await,
        ResponseCode::NXDomain
    );
    assert_eq!(r.search("homework help").await, 200);
    let b = Browser::start("pages").await;
    let mut failures = Vec::new();
    // The change the technician proposes, for the approver to see.
    let mut change = String::new();
    let mut check = async |b: &Browser, name: &str| {
        let status = b.status().await;
        let path = b.screenshot(name).await;
        let found = b.axe().await;
        if status != 200 || !found.is_empty() {
            failures.push(format!(
                "{name} ({}): status {status}; {} ({})",
                b.url().await,
                found
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
                path.display()
            ));
        }
    };
    b.goto(&r.url("/signin")).await;
    check(&b, "signin").await;
    for who in [DSL, TECHNICIAN, APPROVER, GOVERNOR] {
        r.sign_in(&b, who).await;
        let role = who.1;
        let links = b
            .execute(
                "return [...document.querySelectorAll('nav[aria-label=Main] a')]\
                 .map(a => a.getAttribute('href'));",
                vec![],
            )
            .await;
        let links: Vec<String> = serde_json::from_value(links).unwrap();
        assert!(links.len() > 2, "{role}'s navigation: {links:?}");
        for href in links {
            b.goto(&r.url(&href)).await;
            let slug = match href.trim_matches('/') {
                "" => "home".to_owned(),
                s => s.replace('/', "-"),
            };
            check(&b, &format!("{role}-{slug}")).await;
        }
        if role == "technician" {
            b.goto(&r.url("/changes/new")).await;
            check(&b, "technician-changes-new").await;
            fill_allow(&b, "games-test.example").await;
            b.click_button("Preview the change").await;
            check(&b, "technician-changes-preview").await;
            b.click_button("Propose this change").await;
            change = b.url().await;
            check(&b, "technician-change").await;
        }
        if role == "approver" {
            b.goto(&change).await;
            check(&b, "approver-change").await;
        }
        if role == "dsl" {
            b.goto(&r.url("/breaches/1")).await;
            check(&b, "dsl-breach").await;
            b.goto(&r.url("/reports")).await;
            for link in [
                "Weekly monitoring report",
                "Trends by category, group and time",
            ] {
                b.goto(&r.url("/reports")).await;
                b.click_link(link).await;
                let slug = link.split(' ').next().unwrap_or("report").to_lowercase();
                check(&b, &format!("dsl-reports-{slug}")).await;
            }
            b.goto(&r.url("/logs?site=google.com")).await;
            check(&b, "dsl-logs-results").await;
            b.goto(&r.url("/logs/device?name=Library-PC-3")).await;
            check(&b, "dsl-logs-device").await;
        }
        b.goto(&r.url("/signin")).await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A pupil's device asks DNS for an extremist site; the DSL, in a browser with JavaScript
/// off, finds the breach in the inbox with its count, opens it (the request that raised it,
/// the device's browsing either side), takes it, assigns it, adds a note, records an outcome
/// and closes it; the closed breach offers no more changes, and a later note is marked as
/// added after the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_triage_a_breach_raised_by_a_real_dns_query() {
    let r = rig().await;
    assert_eq!(
        r.dns(PUPIL, "allowed-test.example").await,
        ResponseCode::NoError
    );
    assert_eq!(
        r.dns(PUPIL, "extreme-test.example").await,
        ResponseCode::NXDomain
    );
    let dsl = Browser::start_without_javascript("triage").await;
    r.sign_in(&dsl, DSL).await;
    dsl.click_link("Breaches").await;
    eventually("the breach in the inbox", || async {
        if dsl.text().await.contains("extreme-test.example") {
            return true;
        }
        dsl.client().refresh().await.unwrap();
        false
    })
    .await;
    let inbox = dsl.text().await;
    assert!(
        inbox.contains("1 New") || inbox.contains("1\nNew"),
        "{inbox}"
    );
    assert!(inbox.contains("Library-PC-3"), "{inbox}");
    accessible(&dsl, "inbox").await;
    let id = dsl
        .all_text("table a[href^='/breaches/']")
        .await
        .first()
        .and_then(|t| t.trim_start_matches('#').parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no breach link: {inbox}"));
    dsl.click_link(&format!("#{id}")).await;
    assert_eq!(dsl.status().await, 200);
    let page = dsl.text().await;
    assert!(page.contains("extreme-test.example"), "{page}");
    assert!(
        page.contains("allowed-test.example"),
        "the browsing either side: {page}"
    );
    accessible(&dsl, "breach-new").await;

    dsl.click_button("Open it: I am looking at this").await;
    assert_eq!(dsl.status().await, 200, "{}", dsl.text().await);
    dsl.select("Assign to", DSL.0).await;
    dsl.click_button("Assign").await;
    assert_eq!(dsl.status().await, 200, "{}", dsl.text().await);
    dsl.fill(
        "Add a note",
        "Spoke to the form tutor; pupil was researching a history project.",
    )
    .await;
    dsl.click_button("Add the note").await;
    assert_eq!(dsl.status().await, 200, "{}", dsl.text().await);
    dsl.select("Outcome", "Spoke with the pupil").await;
    dsl.execute(
        "document.getElementById('outcome-date').value = '2026-12-01';",
        vec![],
    )
    .await;
    dsl.fill("By whom", "Jo (DSL)").await;
    dsl.click_button("Record it and close the breach").await;
    assert_eq!(dsl.status().await, 200, "{}", dsl.text().await);
    let closed = dsl.text().await;
    assert!(closed.contains("This breach is closed"), "{closed}");
    assert!(closed.contains("Spoke with the pupil"), "{closed}");
    assert!(closed.contains("Spoke to the form tutor"), "{closed}");
    assert!(
        dsl.button("Record the outcome").await.is_none() && dsl.button("Assign").await.is_none(),
        "a closed breach still offers changes"
    );
    dsl.fill("Add a note", "Parents rang back.").await;
    dsl.click_button("Add the note").await;
    assert!(
        dsl.text()
            .await
            .contains("(added after the breach was closed)"),
        "{}",
        dsl.text().await
    );
    accessible(&dsl, "breach-closed").await;
}

/// A technician's first sign-in with the right password only leads to setting up an
/// authenticator (the QR code and the key): nothing else opens until it is done, and a wrong
/// code is refused. After that, signing in needs the password and a fresh code: the password
/// alone, a wrong code, or the same code again are refused. The twin: a governor, whose role
/// needs no second step, signs in with the password alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_sign_in_with_totp() {
    let r = rig().await;
    let b = Browser::start("totp").await;
    b.goto(&r.url("/signin")).await;
    b.fill("Account name", TECHNICIAN.0).await;
    b.fill("Password", PASSWORD).await;
    b.click_button("Sign in").await;
    assert!(
        b.url().await.ends_with("/signin/authenticator"),
        "{}: {}",
        b.url().await,
        b.text().await
    );
    assert_eq!(b.status().await, 200);
    assert_eq!(
        b.execute(
            "return document.querySelectorAll('figure svg').length;",
            vec![]
        )
        .await,
        serde_json::json!(1),
        "no QR code"
    );
    let found = b.axe().await;
    assert!(found.is_empty(), "the set-up page: {found:?}");
    b.screenshot("authenticator").await;
    let first_key = b.text_of("#secret").await;

    // Half signed in: the console's pages stay shut.
    b.goto(&r.url("/changes")).await;
    assert!(
        !b.text().await.contains("Propose a change") && b.url().await.contains("/signin"),
        "an enrolment session opened {}: {}",
        b.url().await,
        b.text().await
    );

    // A wrong code is refused, and a new key is shown.
    b.goto(&r.url("/signin/authenticator")).await;
    let key = b.text_of("#secret").await;
    let wrong = Phone::new(&key, TECHNICIAN.0).wrong();
    b.fill("Code from the app", &wrong).await;
    b.click_button("Confirm and continue").await;
    assert_eq!(b.status().await, 400, "{}", b.text().await);
    let second_key = b.text_of("#secret").await;
    assert_ne!(second_key, key, "the same key after a wrong code");
    assert_ne!(second_key, first_key);

    // The right code from the key shown finishes it: signed in.
    r.enrol(&b, TECHNICIAN.0).await;
    assert!(
        b.text().await.contains("Welcome, sam-tech"),
        "{}",
        b.text().await
    );

    // Signed out, the password alone is not enough, nor a wrong code.
    b.click_button("Sign out").await;
    let wrong = r.phones.lock().unwrap()[TECHNICIAN.0].wrong();
    for (what, code) in [("no code", String::new()), ("a wrong code", wrong)] {
        b.goto(&r.url("/signin")).await;
        b.fill("Account name", TECHNICIAN.0).await;
        b.fill("Password", PASSWORD).await;
        b.fill("Authenticator code", &code).await;
        b.click_button("Sign in").await;
        assert_eq!(b.status().await, 401, "{what}: {}", b.text().await);
        assert!(
            !b.text().await.contains("Welcome"),
            "{what}: {}",
            b.text().await
        );
    }
    b.screenshot("refused").await;
    // The right code signs in; the same code a second time does not.
    let code = r.code(TECHNICIAN.0).await.unwrap();
    for (n, works) in [(1, true), (2, false)] {
        b.goto(&r.url("/signin")).await;
        b.fill("Account name", TECHNICIAN.0).await;
        b.fill("Password", PASSWORD).await;
        b.fill("Authenticator code", &code).await;
        b.click_button("Sign in").await;
        let signed_in = b.text().await.contains("Welcome, sam-tech");
        assert_eq!(signed_in, works, "use {n} of one code: {}", b.text().await);
        if signed_in {
            b.click_button("Sign out").await;
        } else {
            assert_eq!(b.status().await, 401);
        }
    }

    // The twin: a governor needs no second step.
    let governor = Browser::start("totp-governor").await;
    governor.goto(&r.url("/signin")).await;
    governor.fill("Account name", GOVERNOR.0).await;
    governor.fill("Password", PASSWORD).await;
    governor.click_button("Sign in").await;
    assert!(governor.text().await.contains("Welcome, pat-governor"));
}

/// The device timeline a DSL opens from a log row: each day of the last week with its
/// blocked and other requests and the sites blocked most, and the day's requests listed;
/// only that device's (the twin: another pupil's device, same group, same minute, is not
/// there, nor is a device whose name only starts the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_a_device_timeline_shows_its_days_and_only_its_requests() {
    let r = rig().await;
    for name in [
        "games-test.example",
        "games-test.example",
        "allowed-test.example",
    ] {
        r.dns(PUPIL, name).await;
    }
    // 127.0.0.2 is in the pupils' group too, with no device name: its address is its id.
    assert_eq!(
        r.dns([127, 0, 0, 2], "www.google.com").await,
        ResponseCode::NoError
    );
    let dsl = Browser::start("timeline").await;
    r.sign_in(&dsl, DSL).await;
    dsl.goto(&r.url("/logs/device?name=Library-PC-3&days=7"))
        .await;
    eventually("the device's three requests in its timeline", || async {
        let text = dsl.text().await;
        if text.contains("3 events") {
            return true;
        }
        dsl.client().refresh().await.unwrap();
        false
    })
    .await;
    let text = dsl.text().await;
    assert!(text.contains("games-test.example (2)"), "{text}");
    assert!(text.contains("allowed-test.example"), "{text}");
    assert!(
        !text.contains("www.google.com"),
        "another device's request: {text}"
    );
    accessible(&dsl, "timeline-device").await;
    // The other device, by its address: its request only.
    dsl.goto(&r.url("/logs/device?ip=127.0.0.2")).await;
    let text = dsl.text().await;
    assert!(text.contains("www.google.com"), "{text}");
    assert!(!text.contains("games-test.example"), "{text}");
    // A name that only starts like the device's is not the device.
    dsl.goto(&r.url("/logs/device?name=Library-PC")).await;
    let text = dsl.text().await;
    assert!(text.contains("No events from this device"), "{text}");
}
