//! The DSL's casework end to end (issue 16), through the real binary's API socket: a breach
//! raised by a real DNS query is opened, assigned, noted and closed with an outcome; a closed
//! case refuses edits and takes notes; a false positive needs a reason; governors and
//! technicians are refused; the device's browsing either side of the breach; a member of
//! staff's report of a site becomes a change request that, applied, blocks the site.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use hedgerow_testkit::{Appliance, Transport, UpstreamDns, query_from};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

fn config(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
[server]
state_dir = "{{dir}}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{upstream}" }}]
rate_limit_qps = 0

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

[[devices]]
name = "Library-PC-30"
ip = "127.0.0.30"

[breaches]
window = "1h"

[[breaches.rules]]
name = "extremism"
categories = ["extremism"]
severity = "high"
"#
    )
}

async fn start() -> (Appliance, hedgerow_testkit::RunningUpstream) {
    let up = UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::new(192, 0, 2, 1))
        .a("neighbour.example", Ipv4Addr::new(192, 0, 2, 2))
        .a("games.example", Ipv4Addr::new(192, 0, 2, 3))
        .a("other-games.example", Ipv4Addr::new(192, 0, 2, 4))
        .start()
        .await;
    let cfg = config(up.addr);
    let app = tokio::task::spawn_blocking(move || {
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
    .unwrap();
    (app, up)
}

async fn ask(app: &Appliance, from: [u8; 4], name: &str) -> ResponseCode {
    query_from(
        IpAddr::from(from),
        app.dns_udp,
        Transport::Udp,
        name,
        RecordType::A,
        Some(1232),
    )
    .await
    .unwrap()
    .response_code
}

/// `METHOD path` on the appliance's API socket with `token`: the status and the JSON answer.
fn api(
    app: &Appliance,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let sock = app.dir().join("state/api.sock");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&sock)
        .args([
            "-X",
            method,
            "-H",
            &format!("Authorization: Bearer {token}"),
        ]);
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(b.to_string());
    }
    cmd.arg(format!("http://appliance{path}"));
    let out = cmd
        .output()
        .expect("curl (Debian package curl) must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn ok(app: &Appliance, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let (code, v) = api(app, token, method, path, body);
    assert_eq!(code, 200, "{method} {path}: {v}\n{}", app.logs());
    v
}

/// Polls `GET path` until `done` holds for its answer.
fn until(app: &Appliance, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = ok(app, token, "GET", path, None);
        if done(&v) || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_a_breach_from_a_real_dns_query_is_opened_assigned_noted_and_closed() {
    let (app, _up) = start().await;
    // Browsing before the breach on the device, on a device whose name starts the same, and
    // on another address: only the first is the device's.
    assert_eq!(
        ask(&app, [127, 0, 0, 3], "allowed.example").await,
        ResponseCode::NoError
    );
    assert_eq!(
        ask(&app, [127, 0, 0, 30], "neighbour.example").await,
        ResponseCode::NoError
    );
    assert_eq!(
        ask(&app, [127, 0, 0, 9], "neighbour.example").await,
        ResponseCode::NoError
    );
    assert_eq!(
        ask(&app, [127, 0, 0, 3], "extreme.example").await,
        ResponseCode::NXDomain
    );

    tokio::task::block_in_place(|| {
        let dsl = app.token("dsl", "dsl");
        let deputy = app.token("deputy", "deputy-dsl");
        let tech = app.token("tech", "technician,approver");
        let gov = app.token("gov", "governor");

        // The inbox: the DSL sees the breach, New, with its counts.
        let inbox = until(&app, &dsl, "/api/v1/cases", |v| {
            v["items"].as_array().is_some_and(|a| !a.is_empty())
        });
        assert_eq!(inbox["matching"], 1, "{inbox}");
        assert_eq!(inbox["by_status"]["new"], 1, "{inbox}");
        assert_eq!(inbox["by_severity"]["high"], 1, "{inbox}");
        let item = &inbox["items"][0];
        assert_eq!(item["breach"]["device"], "Library-PC-3");
        assert_eq!(item["breach"]["site"], "extreme.example");
        assert_eq!(item["case"]["status"], "new");
        let id = item["breach"]["id"].as_u64().unwrap();
        let none = ok(&app, &dsl, "GET", "/api/v1/cases?status=closed", None);
        assert_eq!(none["matching"], 0, "{none}");

        // Governors and technicians never see it or work on it; the DSL and deputy do.
        for who in [&gov, &tech] {
            for (method, path, body) in [
                ("GET", "/api/v1/cases".to_owned(), None),
                ("GET", format!("/api/v1/cases/{id}"), None),
                ("GET", format!("/api/v1/cases/{id}/browsing"), None),
                ("GET", format!("/api/v1/cases/{id}/evidence"), None),
                (
                    "POST",
                    format!("/api/v1/cases/{id}/steps"),
                    Some(json!({ "step": "open" })),
                ),
            ] {
                let (code, v) = api(&app, who, method, &path, body);
                assert_eq!(code, 403, "{method} {path}: {v}");
            }
        }
        let case = ok(&app, &deputy, "GET", &format!("/api/v1/cases/{id}"), None);
        assert_eq!(case["breach"]["triggers"][0]["target"], "extreme.example");
        assert_eq!(case["case"]["status"], "new");

        // The device's browsing ten minutes either side: its own events only.
        let browsing = until(&app, &dsl, &format!("/api/v1/cases/{id}/browsing"), |v| {
            v["events"].as_array().is_some_and(|a| a.len() >= 2)
        });
        let targets: Vec<&str> = browsing["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["target"].as_str().unwrap())
            .collect();
        assert_eq!(
            targets,
            ["allowed.example", "extreme.example"],
            "{browsing}"
        );
        assert_eq!(browsing["events"][1]["verdict"], "block");

        // Open by assigning to the deputy; a technician is no assignee.
        let step = |who: &str, body: Value| {
            api(
                &app,
                who,
                "POST",
                &format!("/api/v1/cases/{id}/steps"),
                Some(body),
            )
        };
        let (code, v) = step(&dsl, json!({ "step": "assign", "to": "tech" }));
        assert_eq!(code, 400, "{v}");
        let (code, v) = step(&dsl, json!({ "step": "assign", "to": "deputy" }));
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["case"]["status"], "open");
        assert_eq!(v["case"]["assigned"], "deputy");
        let (code, v) = step(
            &deputy,
            json!({ "step": "note", "text": "Spoke to the form tutor about the topic." }),
        );
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["notes"][0]["author"], "deputy");

        // A false positive needs its reason: refused without, the twin with one follows on
        // another outcome below. Closing needs an outcome at all.
        let (code, v) = step(
            &deputy,
            json!({ "step": "close", "outcome": { "id": "false-positive" } }),
        );
        assert_eq!(code, 400, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("reason"),
            "{v}"
        );
        let (code, v) = step(&deputy, json!({ "step": "close" }));
        assert_eq!(code, 400, "{v}");
        let (code, v) = step(
            &deputy,
            json!({ "step": "close", "outcome": { "id": "spoke-with-pupil", "date": "2020-01-02" } }),
        );
        assert_eq!(code, 400, "spoke-with-pupil needs by whom: {v}");
        let (code, v) = step(
            &deputy,
            json!({ "step": "close", "outcome": { "id": "spoke-with-pupil", "date": "2020-01-02", "by": "Ms Tutor" } }),
        );
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["case"]["status"], "closed");
        assert_eq!(v["case"]["outcome"]["id"], "spoke-with-pupil");
        assert_eq!(v["case"]["outcome"]["date"], "2020-01-02");
        assert_eq!(v["case"]["closed"]["by"], "deputy");

        // Closed: edits refused with a clear error; a note is taken, with author and time.
        for body in [
            json!({ "step": "assign", "to": "dsl" }),
            json!({ "step": "outcome", "outcome": { "id": "no-further-action" } }),
            json!({ "step": "open" }),
        ] {
            let (code, v) = step(&dsl, body);
            assert_eq!(code, 409, "{v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains("closed"),
                "{v}"
            );
        }
        let (code, v) = step(
            &dsl,
            json!({ "step": "note", "text": "Parents rang back." }),
        );
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["notes"][1]["author"], "dsl");
        assert_eq!(v["notes"][1]["after_close"], true);
        assert!(v["notes"][1]["time"].is_string());

        let inbox = ok(&app, &dsl, "GET", "/api/v1/cases?status=closed", None);
        assert_eq!(inbox["matching"], 1, "{inbox}");
        assert_eq!(inbox["by_status"]["closed"], 1, "{inbox}");

        // The audit log, which governors read, says which breach and which step, never the
        // device, the site or a note.
        let audit = ok(&app, &gov, "GET", "/api/v1/audit", None);
        let entries = audit.as_array().unwrap();
        let actions: Vec<&str> = entries
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        for want in [
            "view-breaches",
            "view-breach",
            "view-logs",
            "case-assign",
            "case-note",
            "case-close",
            "case-edit-refused",
        ] {
            assert!(actions.contains(&want), "{want}: {actions:?}");
        }
        for e in entries.iter().filter(|e| {
            e["action"].as_str().unwrap().starts_with("case-")
                || e["action"].as_str().unwrap().starts_with("view-")
        }) {
            let d = e["detail"].as_str().unwrap();
            for secret in [
                "extreme.example",
                "Library-PC-3",
                "form tutor",
                "Parents rang",
            ] {
                assert!(!d.contains(secret), "{d}");
            }
        }
        // The evidence pack's data is an export, in the audit log.
        let ev = ok(
            &app,
            &dsl,
            "GET",
            &format!("/api/v1/cases/{id}/evidence"),
            None,
        );
        assert_eq!(ev["case"]["case"]["status"], "closed");
        assert_eq!(ev["browsing"]["events"].as_array().unwrap().len(), 2);
        let audit = ok(&app, &gov, "GET", "/api/v1/audit", None);
        assert!(
            audit
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "export" && e["actor"] == "dsl"),
            "{audit}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_a_staff_report_becomes_a_change_request_that_blocks_the_site() {
    let (app, _up) = start().await;
    assert_eq!(
        ask(&app, [127, 0, 0, 3], "games.example").await,
        ResponseCode::NoError
    );
    let change = tokio::task::block_in_place(|| {
        let dsl = app.token("dsl", "dsl");
        let staff = app.token("teacher", "staff");
        let other = app.token("teacher2", "staff");
        let tech = app.token("tech", "technician");

        // Any account reports a site; staff see nothing else.
        let r = ok(
            &app,
            &staff,
            "POST",
            "/api/v1/site-reports",
            Some(
                json!({ "url": "https://games.example/play", "reason": "Year 8 play it in lessons" }),
            ),
        );
        assert_eq!(r["status"], "pending");
        let id = r["id"].as_u64().unwrap();
        let (code, v) = api(
            &app,
            &staff,
            "POST",
            "/api/v1/site-reports",
            Some(json!({ "url": "games.example", "reason": "" })),
        );
        assert_eq!(code, 400, "a report needs a reason: {v}");
        for path in ["/api/v1/cases", "/api/v1/changes", "/api/v1/audit"] {
            let (code, v) = api(&app, &staff, "GET", path, None);
            assert_eq!(code, 403, "{path}: {v}");
        }
        // An illegal-tier address is kept only as its protected rule.
        let hidden = ok(
            &app,
            &staff,
            "POST",
            "/api/v1/site-reports",
            Some(json!({ "url": "http://iwf-test.invalid/a.html", "reason": "a pupil showed me" })),
        );
        assert_eq!(hidden["protected"], true, "{hidden}");
        assert!(!hidden.to_string().contains("iwf-test"), "{hidden}");

        // The reporter sees their own reports; other staff do not; the DSL sees all.
        let mine = ok(&app, &staff, "GET", "/api/v1/site-reports", None);
        assert_eq!(mine.as_array().unwrap().len(), 2);
        let theirs = ok(&app, &other, "GET", "/api/v1/site-reports", None);
        assert!(theirs.as_array().unwrap().is_empty(), "{theirs}");
        let (code, _) = api(
            &app,
            &other,
            "GET",
            &format!("/api/v1/site-reports/{id}"),
            None,
        );
        assert_eq!(code, 403);
        let all = ok(
            &app,
            &dsl,
            "GET",
            "/api/v1/site-reports?status=pending",
            None,
        );
        assert_eq!(all.as_array().unwrap().len(), 2);
        assert!(!all.to_string().contains("iwf-test"), "{all}");

        // Only the DSL turns a report into a change: the technician and the reporter are
        // refused.
        let body = json!({ "groups": ["ks3"] });
        for who in [&tech, &staff] {
            let (code, v) = api(
                &app,
                who,
                "POST",
                &format!("/api/v1/site-reports/{id}/change"),
                Some(body.clone()),
            );
            assert_eq!(code, 403, "{v}");
        }
        let done = ok(
            &app,
            &dsl,
            "POST",
            &format!("/api/v1/site-reports/{id}/change"),
            Some(body),
        );
        assert_eq!(done["report"]["status"], "change-requested");
        let change = done["change"]["id"].as_u64().unwrap();
        assert_eq!(done["report"]["change"], change);
        assert_eq!(
            done["change"]["edits"][0],
            json!({ "op": "add-block", "group": "ks3", "entry": "games.example" })
        );
        let (code, v) = api(
            &app,
            &dsl,
            "POST",
            &format!("/api/v1/site-reports/{id}/dismiss"),
            Some(json!({ "reason": "twice" })),
        );
        assert_eq!(code, 409, "decided already: {v}");
        let seen = ok(
            &app,
            &staff,
            "GET",
            &format!("/api/v1/site-reports/{id}"),
            None,
        );
        assert_eq!(seen["status"], "change-requested");
        assert_eq!(seen["change"], change);

        // A dismissal needs the reason the reporter sees.
        let hid = hidden["id"].as_u64().unwrap();
        let (code, _) = api(
            &app,
            &dsl,
            "POST",
            &format!("/api/v1/site-reports/{hid}/dismiss"),
            Some(json!({ "reason": " " })),
        );
        assert_eq!(code, 400);
        let d = ok(
            &app,
            &dsl,
            "POST",
            &format!("/api/v1/site-reports/{hid}/dismiss"),
            Some(json!({ "reason": "the filter blocks it for everyone already" })),
        );
        assert_eq!(d["status"], "dismissed");

        // The technician applies the tightening change.
        let applied = ok(
            &app,
            &tech,
            "POST",
            &format!("/api/v1/changes/{change}/apply"),
            None,
        );
        assert_eq!(applied["status"], "applied", "{applied}");
        change
    });
    assert!(change > 0);
    // Now blocked for the group, by a real query; the twin site is not over-blocked.
    assert_eq!(
        ask(&app, [127, 0, 0, 3], "games.example").await,
        ResponseCode::NXDomain
    );
    assert_eq!(
        ask(&app, [127, 0, 0, 3], "other-games.example").await,
        ResponseCode::NoError
    );
}
