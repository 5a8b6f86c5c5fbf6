//! Filter change control end to end, through the real binary and its API socket: accounts,
//! propose / approve / apply with the approval rules, comments kept, verdicts changed, expiry,
//! the DSL's co-sign, illegal-tier refusals, validation failures that leave every file
//! untouched, hand edits noticed, and the audit chain verified and then broken by tampering.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hedgerow_testkit::Appliance;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

const MAIN: &str = r#"
include = ["groups.toml"]

[server]
state_dir = "{dir}/state"
timezone = "Europe/London"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{ address = "127.0.0.1:9" }]
blockpage_ipv4 = "192.0.2.80"

[lists.iwf]
path = "{dir}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.adult]
path = "{dir}/adult.txt"
format = "domains"
category = "adult"

[lists.games]
path = "{dir}/games.txt"
format = "domains"
category = "games"
"#;

const GROUPS: &str = r#"# Groups: edited by the technician. Keep this comment.
[groups.ks2]
networks = ["127.0.0.1/32"]
block_categories = ["adult", "games"] # pupils
safesearch = "on"
youtube = "strict"

# Staff: the same blocks, no SafeSearch.
[groups.staff]
networks = ["127.0.0.4/32"]
block_categories = ["adult", "games"]
safesearch = "off"
youtube = "off"
allow = [
    "bbc.co.uk", # news
]
"#;

fn start() -> Appliance {
    start_with(MAIN)
}

/// The appliance on `main` with the lists and groups every test here shares.
fn start_with(main: &str) -> Appliance {
    Appliance::start(
        Path::new(BIN),
        main,
        &[
            ("groups.toml", GROUPS),
            ("iwf.txt", "http://abuse-test.invalid/gallery/item-1.html\n"),
            ("adult.txt", "adult-test.example\n"),
            ("games.txt", "games-test.example\n"),
        ],
        &[],
    )
}

/// Runs `hedgerow ARGS --config …` with `token` in HEDGEROW_TOKEN and `stdin` on standard input.
fn run(app: &Appliance, token: Option<&str>, stdin: &str, args: &[&str]) -> (bool, Value, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--config")
        .arg(app.config_path())
        .arg("--json")
        .env_remove("HEDGEROW_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.env("HEDGEROW_TOKEN", t);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.success(), v, stdout + &stderr)
}

fn ok(app: &Appliance, token: Option<&str>, stdin: &str, args: &[&str]) -> Value {
    let (success, v, out) = run(app, token, stdin, args);
    assert!(success, "hedgerow {args:?} failed: {out}\n{}", app.logs());
    v
}

fn refused(app: &Appliance, token: Option<&str>, args: &[&str]) -> (String, String) {
    let (success, v, out) = run(app, token, "", args);
    assert!(
        !success,
        "hedgerow {args:?} should have been refused: {out}"
    );
    (v["error"]["kind"].as_str().unwrap_or("").to_owned(), out)
}

fn verdict(app: &Appliance, client: &str, target: &str) -> String {
    let out = app.cli(&["lookup"], &["--client", client, "--json", target]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["verdict"]["action"].as_str().unwrap().to_owned()
}

fn id(v: &Value) -> String {
    v["id"].as_u64().unwrap().to_string()
}

fn file_hashes(app: &Appliance) -> Vec<(String, Vec<u8>)> {
    ["hedgerow.toml", "groups.toml"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(app.dir().join(n)).unwrap()))
        .collect()
}

/// Accounts: boss (approver, bootstrapped), tech (technician and approver), dsl.
fn accounts(app: &Appliance) -> (String, String, String) {
    // Nobody may add an account without signing in once one exists: the first is the twin.
    ok(
        app,
        None,
        "boss-password-1\n",
        &["user", "add", "boss", "--roles", "approver"],
    );
    let (kind, _) = refused(
        app,
        None,
        &["user", "add", "eve", "--roles", "approver", "--no-password"],
    );
    assert_eq!(kind, "unauthenticated");
    let boss = ok(
        app,
        None,
        "boss-password-1\n",
        &["user", "token", "boss", "--user", "boss"],
    );
    let boss = boss["token"].as_str().unwrap().to_owned();
    let (success, _, _) = run(
        app,
        None,
        "wrong-password\n",
        &["user", "token", "boss", "--user", "boss"],
    );
    assert!(!success, "a wrong password signed in");
    ok(
        app,
        Some(&boss),
        "tech-password-1\n",
        &["user", "add", "tech", "--roles", "technician,approver"],
    );
    ok(
        app,
        Some(&boss),
        "dsl-password-12\n",
        &["user", "add", "dsl", "--roles", "dsl"],
    );
    let token = |name: &str| {
        ok(app, Some(&boss), "", &["user", "token", name])["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    ok(
        app,
        Some(&boss),
        "",
        &[
            "user",
            "add",
            "gov",
            "--roles",
            "technician",
            "--no-password",
        ],
    );
    let (tech, dsl, gov) = (token("tech"), token("dsl"), token("gov"));
    // Roles are checked in one place: the approver may change them, others may not.
    ok(
        app,
        Some(&boss),
        "",
        &["user", "roles", "gov", "--roles", "governor"],
    );
    let (kind, _) = refused(
        app,
        Some(&gov),
        &["user", "roles", "gov", "--roles", "approver"],
    );
    assert_eq!(kind, "forbidden");
    let (kind, _) = refused(
        app,
        Some(&gov),
        &[
            "change",
            "propose",
            "--block",
            "ks2:x-test.example",
            "--reason",
            "x",
            "--risk",
            "low",
            "--justification",
            "x",
        ],
    );
    assert_eq!(kind, "forbidden", "a governor proposed a change");
    let users = ok(app, Some(&gov), "", &["user", "list"]);
    assert_eq!(users.as_array().unwrap().len(), 4);
    assert!(
        !users.to_string().contains("argon2"),
        "a password hash was shown"
    );
    (boss, tech, dsl)
}

#[test]
fn change_control_end_to_end() {
    let mut app = start();
    let (boss, tech, dsl) = accounts(&app);
    let t = Some(tech.as_str());

    // A technician proposes an allow for staff; the preview names the verdict that changes.
    assert_eq!(verdict(&app, "127.0.0.4", "games-test.example"), "block");
    let c = ok(
        &app,
        t,
        "",
        &[
            "change",
            "propose",
            "--allow",
            "staff:games-test.example",
            "--reason",
            "game design lesson",
            "--risk",
            "low",
            "--justification",
            "staff only",
            "--benefit",
            "curriculum",
        ],
    );
    let cid = id(&c);
    assert_eq!(c["direction"], "loosening");
    assert_eq!(c["status"], "proposed");
    let v = &c["preview"]["verdicts"];
    assert!(
        v.as_array().unwrap().iter().any(|x| x["group"] == "staff"
            && x["target"] == "games-test.example"
            && x["before"] == "block"
            && x["after"] == "allow"),
        "{c}"
    );
    assert!(
        c["preview"]["diff"]
            .as_str()
            .unwrap()
            .contains("+    \"games-test.example\","),
        "{c}"
    );
    // Not applied before approval; self-approval refused; an approver approves.
    let (kind, _) = refused(&app, t, &["change", "apply", &cid]);
    assert_eq!(kind, "conflict");
    let (kind, out) = refused(&app, t, &["change", "approve", &cid]);
    assert_eq!(kind, "conflict");
    assert!(out.contains("own change"), "{out}");
    let a = ok(
        &app,
        Some(&boss),
        "",
        &["change", "approve", &cid, "--note", "agreed"],
    );
    assert_eq!(a["status"], "approved");
    let applied = ok(&app, t, "", &["change", "apply", &cid]);
    assert_eq!(applied["status"], "applied");
    assert_eq!(applied["files"].as_array().unwrap().len(), 1);
    let groups = std::fs::read_to_string(app.dir().join("groups.toml")).unwrap();
    assert!(
        groups.contains("# Groups: edited by the technician. Keep this comment."),
        "{groups}"
    );
    assert!(
        groups.contains("# Staff: the same blocks, no SafeSearch."),
        "{groups}"
    );
    assert!(groups.contains("\"bbc.co.uk\", # news"), "{groups}");
    assert!(
        groups.contains("block_categories = [\"adult\", \"games\"] # pupils"),
        "{groups}"
    );
    assert_eq!(verdict(&app, "127.0.0.4", "games-test.example"), "allow");
    assert_eq!(
        verdict(&app, "127.0.0.1", "games-test.example"),
        "block",
        "ks2 over-allowed"
    );

    // Tightening applies at once, with no approval, and is still recorded.
    let c = ok(
        &app,
        t,
        "",
        &[
            "change",
            "propose",
            "--block",
            "staff:tiktok-test.example",
            "--reason",
            "distraction",
            "--risk",
            "low",
            "--justification",
            "tightens",
        ],
    );
    assert_eq!(c["direction"], "tightening");
    ok(&app, t, "", &["change", "apply", &id(&c)]);
    assert_eq!(verdict(&app, "127.0.0.4", "tiktok-test.example"), "block");

    // High risk waits for the DSL as well as an approver.
    let c = ok(
        &app,
        t,
        "",
        &[
            "change",
            "propose",
            "--unblock-category",
            "staff:adult",
            "--reason",
            "research",
            "--risk",
            "high",
            "--justification",
            "adult content for staff",
        ],
    );
    let hid = id(&c);
    let a = ok(&app, Some(&boss), "", &["change", "approve", &hid]);
    assert_eq!(a["status"], "proposed", "approved without the DSL: {a}");
    let (kind, out) = refused(&app, t, &["change", "apply", &hid]);
    assert_eq!(kind, "conflict");
    assert!(out.contains("dsl"), "{out}");
    let a = ok(&app, Some(&dsl), "", &["change", "approve", &hid]);
    assert_eq!(a["status"], "approved");
    ok(
        &app,
        Some(&boss),
        "",
        &["change", "reject", &hid, "--note", "not now"],
    );
    let (kind, _) = refused(&app, t, &["change", "apply", &hid]);
    assert_eq!(kind, "conflict");
    assert_eq!(verdict(&app, "127.0.0.4", "adult-test.example"), "block");

    // The illegal tier cannot be touched, and the refusal does not repeat the entry; the twin,
    // an ordinary URL, is accepted.
    let before = file_hashes(&app);
    let (kind, out) = refused(
        &app,
        t,
        &[
            "change",
            "propose",
            "--allow",
            "staff:abuse-test.invalid/gallery/item-1.html",
            "--reason",
            "x",
            "--risk",
            "low",
            "--justification",
            "x",
        ],
    );
    assert_eq!(kind, "illegal-tier", "{out}");
    assert!(
        !out.contains("abuse-test"),
        "the refusal repeats the entry: {out}"
    );
    let (kind, _) = refused(
        &app,
        t,
        &[
            "change",
            "propose",
            "--remove-list",
            "iwf",
            "--reason",
            "x",
            "--risk",
            "low",
            "--justification",
            "x",
        ],
    );
    assert_eq!(kind, "illegal-tier");
    ok(
        &app,
        t,
        "",
        &[
            "change",
            "propose",
            "--allow",
            "staff:fine-test.example/page",
            "--reason",
            "x",
            "--risk",
            "low",
            "--justification",
            "x",
        ],
    );
    // A change that breaks validation (a blocked category no list provides) is recorded as
    // failed, and no file changes.
    let (kind, out) = refused(
        &app,
        t,
        &[
            "change",
            "propose",
            "--remove-list",
            "games",
            "--reason",
            "x",
            "--risk",
            "low",
            "--justification",
            "x",
        ],
    );
    assert_eq!(kind, "validation", "{out}");
    assert!(out.contains("games"), "{out}");
    assert_eq!(file_hashes(&app), before, "a refused change touched a file");
    let log = app.logs();
    assert!(
        !log.contains("abuse-test"),
        "an illegal-tier entry in the service log"
    );

    // A time-limited exception reverts itself, through the same path, as its own change.
    assert_eq!(
        verdict(&app, "127.0.0.1", "arcade.games-test.example"),
        "block"
    );
    let c = ok(
        &app,
        t,
        "",
        &[
            "change",
            "propose",
            "--allow",
            "ks2:arcade.games-test.example",
            "--reason",
            "lesson",
            "--risk",
            "medium",
            "--justification",
            "one lesson",
            "--expires",
            "4s",
        ],
    );
    let eid = id(&c);
    ok(&app, Some(&boss), "", &["change", "approve", &eid]);
    ok(&app, t, "", &["change", "apply", &eid]);
    assert_eq!(
        verdict(&app, "127.0.0.1", "arcade.games-test.example"),
        "allow"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let reverted = loop {
        let list = ok(&app, t, "", &["change", "list"]);
        let hit = list
            .as_array()
            .unwrap()
            .iter()
            .find(|x| {
                x["origin"] == "expiry"
                    && x["reverts"].as_u64().map(|n| n.to_string()) == Some(eid.clone())
            })
            .cloned();
        if let Some(h) = hit.filter(|h| h["status"] == "applied") {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "the exception did not expire: {list}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(reverted["applied_by"], "hedgerow");
    assert_eq!(
        verdict(&app, "127.0.0.1", "arcade.games-test.example"),
        "block"
    );
    assert_eq!(
        ok(&app, t, "", &["change", "show", &eid])["status"],
        "reverted"
    );

    // Nothing so far was a hand edit; one made now is recorded at the next reload.
    let list = ok(&app, t, "", &["change", "list"]);
    assert!(!list.to_string().contains("\"unreviewed\""), "{list}");
    let edited = std::fs::read_to_string(app.dir().join("groups.toml"))
        .unwrap()
        .replace("youtube = \"strict\"", "youtube = \"off\"");
    std::fs::write(app.dir().join("groups.toml"), edited).unwrap();
    let r = app.cli(&["reload"], &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let list = ok(&app, t, "", &["change", "list"]);
    let hand = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["status"] == "unreviewed")
        .unwrap_or_else(|| panic!("no unreviewed change: {list}"))
        .clone();
    assert!(
        hand["preview"]["diff"]
            .as_str()
            .unwrap()
            .contains("-youtube = \"strict\""),
        "{hand}"
    );
    // While it waits for review, nothing that loosens the filter may be proposed (a hand
    // edit could have loosened the approval rules themselves)...
    let loosen = [
        "change",
        "propose",
        "--allow",
        "staff:loosen-test.example",
        "--reason",
        "a site for the staff room",
        "--risk",
        "low",
        "--justification",
        "staff only",
    ];
    let (_, out) = refused(&app, t, &loosen);
    assert!(
        out.contains(&format!("unreviewed change #{}", id(&hand))),
        "{out}"
    );
    let ack = ok(&app, Some(&dsl), "", &["change", "approve", &id(&hand)]);
    assert_eq!(ack["status"], "acknowledged");
    // ...and once it has been looked at, it may.
    let later = ok(&app, t, "", &loosen);
    assert_eq!(later["status"], "proposed", "{later}");

    // Reverting the first change is a new change (a tightening one: applied at once).
    let r = ok(
        &app,
        t,
        "",
        &["change", "revert", &cid, "--reason", "lesson over"],
    );
    assert_eq!(r["status"], "applied");
    assert_eq!(verdict(&app, "127.0.0.4", "games-test.example"), "block");

    // The audit chain verifies through the API; a governor may read it.
    let v = ok(&app, t, "", &["audit", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
    let log = ok(&app, t, "", &["audit", "list"]);
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "account-add",
        "login",
        "change-proposed",
        "change-approved",
        "change-applied",
        "change-rejected",
        "change-refused",
        "change-failed",
        "unreviewed-change",
        "approval-refused",
    ] {
        assert!(actions.contains(&a), "no {a} in the audit log: {actions:?}");
    }
    assert!(
        !log.to_string().contains("abuse-test"),
        "an illegal-tier entry in the audit log"
    );
    assert!(
        !log.to_string().contains("password-1"),
        "a password in the audit log"
    );

    // Stopped, `audit verify` reads the store itself; tampering with one entry breaks it.
    app.stop();
    let (success, v, out) = run(&app, None, "", &["audit", "verify"]);
    assert!(success && v["ok"] == true, "{out}");
    {
        let db = sled::open(app.dir().join("state/store/main")).unwrap();
        let tree = db.open_tree("audit").unwrap();
        let (key, value) = tree
            .iter()
            .map(Result::unwrap)
            .find(|(_, v)| v.windows(4).any(|w| w == b"game"))
            .unwrap();
        let tampered: Vec<u8> = {
            let mut b = value.to_vec();
            let at = b.windows(4).position(|w| w == b"game").unwrap();
            b[at] = b'G';
            b
        };
        tree.insert(key, tampered).unwrap();
        db.flush().unwrap();
    }
    let (success, v, out) = run(&app, None, "", &["audit", "verify"]);
    assert!(!success, "tampering went unnoticed: {out}");
    assert_eq!(v["ok"], false);
    assert!(v["problems"][0].as_str().unwrap().contains("edited"), "{v}");
}

const PROXY_AND_BREACHES: &str = r#"
[proxy]
listen = ["127.0.0.1:0"]
allow_destinations = ["127.0.0.0/8"]
ca_cert = "{dir}/school-ca.pem"
ca_key = "{dir}/school-ca.key"
intercept_groups = ["staff"]
never_intercept = ["bank-test.example"]

[breaches]
window = "1h"

[[breaches.rules]]
name = "adult content"
categories = ["adult"]
severity = "high"

[[breaches.rules]]
name = "games"
categories = ["games"]
severity = "low"
"#;

fn propose(app: &Appliance, token: &str, edit: &[&str]) -> Value {
    let mut args = vec!["change", "propose"];
    args.extend_from_slice(edit);
    args.extend_from_slice(&[
        "--reason",
        "test",
        "--risk",
        "low",
        "--justification",
        "test",
    ]);
    ok(app, Some(token), "", &args)
}

/// Proposes, has `approver` approve it when it loosens, and applies it.
fn through(app: &Appliance, token: &str, approver: &str, edit: &[&str], direction: &str) -> Value {
    let c = propose(app, token, edit);
    assert_eq!(c["direction"], direction, "{edit:?}: {c}");
    if direction == "loosening" {
        let (kind, _) = refused(app, Some(token), &["change", "apply", &id(&c)]);
        assert_eq!(kind, "conflict", "a loosening change applied unapproved");
        ok(app, Some(approver), "", &["change", "approve", &id(&c)]);
    }
    let a = ok(app, Some(token), "", &["change", "apply", &id(&c)]);
    assert_eq!(a["status"], "applied", "{a}");
    a
}

fn group_of(app: &Appliance, client: &str) -> Option<String> {
    let out = app.cli(
        &["lookup"],
        &["--client", client, "--json", "x-test.example"],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["group"].as_str().map(str::to_owned)
}

/// Devices, breach rules, interception lists and schedules go through change control: each
/// classified, approved when it loosens, applied to the files, in force, and reverted.
#[test]
fn devices_breach_rules_interception_and_schedules() {
    let ca = hedgerow_testkit::TestCa::new("School CA");
    let (cert, key) = (ca.cert_pem(), ca.key_pem());
    let main = [MAIN, PROXY_AND_BREACHES].concat();
    let app = Appliance::start(
        Path::new(BIN),
        &main,
        &[
            ("groups.toml", GROUPS),
            ("iwf.txt", "http://abuse-test.invalid/gallery/item-1.html\n"),
            ("adult.txt", "adult-test.example\n"),
            ("games.txt", "games-test.example\n"),
            ("school-ca.pem", &cert),
            ("school-ca.key", &key),
        ],
        &[],
    );
    let (boss, tech, _dsl) = accounts(&app);
    let read = |name: &str| std::fs::read_to_string(app.dir().join(name)).unwrap();

    // A device put in a group loosens (an unknown address is served from now on); it is in
    // force once applied. A device with no group only names events: it tightens.
    assert_eq!(group_of(&app, "127.0.0.9"), None);
    let dev = through(
        &app,
        &tech,
        &boss,
        &[
            "--edit",
            r#"{"op":"add-device","device":{"name":"lab-pc-1","ip":"127.0.0.9","group":"staff"}}"#,
        ],
        "loosening",
    );
    assert_eq!(group_of(&app, "127.0.0.9").as_deref(), Some("staff"));
    assert!(read("hedgerow.toml").contains("[[devices]]\nname = \"lab-pc-1\""));
    through(
        &app,
        &tech,
        &boss,
        &[
            "--edit",
            r#"{"op":"add-device","device":{"name":"printer","ip":"127.0.0.1"}}"#,
        ],
        "tightening",
    );
    let out = app.cli(
        &["lookup"],
        &["--client", "127.0.0.1", "--json", "x-test.example"],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["group"].as_str(), v["device"].as_str()),
        (Some("ks2"), Some("printer"))
    );
    // Removing a device loosens; the revert of the first is that removal.
    let r = ok(&app, Some(&tech), "", &["change", "revert", &id(&dev)]);
    assert_eq!(r["direction"], "loosening");
    assert_eq!(r["edits"][0]["op"], "remove-device");
    ok(&app, Some(&boss), "", &["change", "approve", &id(&r)]);
    ok(&app, Some(&tech), "", &["change", "apply", &id(&r)]);
    assert_eq!(
        group_of(&app, "127.0.0.9"),
        None,
        "the device was not removed"
    );
    assert_eq!(group_of(&app, "127.0.0.1").as_deref(), Some("ks2"));

    // Breach rules: one added at the end tightens; removing one loosens, and its revert puts
    // it back where it was (first), which may take events from the rules after it: loosening.
    through(
        &app,
        &tech,
        &boss,
        &[
            "--edit",
            r#"{"op":"add-breach-rule","rule":{"name":"games late","tiers":["category"],"categories":["games"],"severity":"medium"}}"#,
        ],
        "tightening",
    );
    assert!(read("hedgerow.toml").contains("name = \"games late\""));
    let removed = through(
        &app,
        &tech,
        &boss,
        &["--remove-breach-rule", "adult content"],
        "loosening",
    );
    assert!(!read("hedgerow.toml").contains("adult content"));
    let r = ok(&app, Some(&tech), "", &["change", "revert", &id(&removed)]);
    assert_eq!(r["direction"], "loosening", "{r}");
    assert_eq!(r["edits"][0]["at"], 0, "{r}");
    ok(&app, Some(&boss), "", &["change", "approve", &id(&r)]);
    ok(&app, Some(&tech), "", &["change", "apply", &id(&r)]);
    let text = read("hedgerow.toml");
    let (a, g, l) = (
        text.find("adult content").unwrap(),
        text.find("name = \"games\"").unwrap(),
        text.find("games late").unwrap(),
    );
    assert!(a < g && g < l, "the rules' order was not restored: {text}");
    let (kind, out) = refused(
        &app,
        Some(&tech),
        &[
            "change",
            "propose",
            "--remove-breach-rule",
            "no such rule",
            "--reason",
            "x",
            "--risk",
            "low",
            "--justification",
            "x",
        ],
    );
    assert_eq!(kind, "validation", "{out}");

    // Interception lists: never_intercept grows (loosens) and shrinks (tightens);
    // intercept_groups grows (tightens) and shrinks (loosens).
    through(
        &app,
        &tech,
        &boss,
        &["--never-intercept", "health-test.example"],
        "loosening",
    );
    through(
        &app,
        &tech,
        &boss,
        &["--remove-never-intercept", "bank-test.example"],
        "tightening",
    );
    through(
        &app,
        &tech,
        &boss,
        &["--intercept-group", "ks2"],
        "tightening",
    );
    through(
        &app,
        &tech,
        &boss,
        &["--remove-intercept-group", "staff"],
        "loosening",
    );
    let text = read("hedgerow.toml");
    assert!(text.contains("intercept_groups = [\"ks2\"]"), "{text}");
    assert!(
        text.contains("never_intercept = [\"health-test.example\"]"),
        "{text}"
    );

    // A schedule that opens a category loosens; it is in force for that group only, and
    // removing it tightens.
    assert_eq!(verdict(&app, "127.0.0.1", "games-test.example"), "block");
    through(
        &app,
        &tech,
        &boss,
        &[
            "--edit",
            r#"{"op":"add-schedule","group":"ks2","schedule":{"name":"games club","allow_categories":["games"],"days":["everyday"],"from":"00:00","to":"24:00"}}"#,
        ],
        "loosening",
    );
    assert!(read("groups.toml").contains("[[groups.ks2.schedule]]"));
    assert_eq!(verdict(&app, "127.0.0.1", "games-test.example"), "allow");
    assert_eq!(verdict(&app, "127.0.0.1", "adult-test.example"), "block");
    assert_eq!(verdict(&app, "127.0.0.4", "games-test.example"), "block");
    through(
        &app,
        &tech,
        &boss,
        &["--remove-schedule", "ks2:games club"],
        "tightening",
    );
    assert_eq!(verdict(&app, "127.0.0.1", "games-test.example"), "block");
    assert!(!read("groups.toml").contains("schedule"));
    // No schedule may open the illegal tier's category.
    let (kind, _) = refused(
        &app,
        Some(&tech),
        &[
            "change",
            "propose",
            "--edit",
            r#"{"op":"add-schedule","group":"ks2","schedule":{"name":"x","allow_categories":["child-abuse"],"days":["everyday"],"from":"00:00","to":"24:00"}}"#,
            "--reason",
            "x",
            "--risk",
            "low",
            "--justification",
            "x",
        ],
    );
    assert_eq!(kind, "illegal-tier");
    assert!(!read("groups.toml").contains("child-abuse"));
    // Comments survived every edit, and nothing here was a hand edit.
    assert!(read("groups.toml").contains("# Staff: the same blocks, no SafeSearch."));
    let list = ok(&app, Some(&tech), "", &["change", "list"]);
    assert!(!list.to_string().contains("\"unreviewed\""), "{list}");
}

/// A hand edit found at a reload is raised at once on the alert channels, as a high
/// operational alert naming the unreviewed change, with its diff (any line naming what the
/// illegal tier covers withheld). A reload with no hand edit raises nothing.
#[test]
fn hand_edit_is_raised_on_the_alert_channels() {
    let hook = hedgerow_testkit::Webhook::start(0);
    let alerts = format!(
        "\n[alerts]\nimmediate = \"high\"\n\n[alerts.webhook]\nurl = \"{}\"\n",
        hook.url
    );
    let main = [MAIN, &alerts].concat();
    let app = start_with(&main);
    let unreviewed = || -> Vec<Value> {
        hook.json()
            .into_iter()
            .filter(|v| v["kind"] == "unreviewed-change")
            .collect()
    };
    // The twin: a reload of unchanged files raises nothing.
    let r = app.cli(&["reload"], &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    std::thread::sleep(Duration::from_millis(500));
    assert!(unreviewed().is_empty(), "{:?}", hook.json());

    let edited = std::fs::read_to_string(app.dir().join("groups.toml"))
        .unwrap()
        .replace("youtube = \"strict\"", "youtube = \"off\"")
        .replace(
            "    \"bbc.co.uk\", # news\n]",
            "    \"bbc.co.uk\", # news\n]\nblock = [\"abuse-test.invalid/gallery/item-1.html\"]",
        );
    std::fs::write(app.dir().join("groups.toml"), edited).unwrap();
    let r = app.cli(&["reload"], &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let deadline = Instant::now() + Duration::from_secs(10);
    while unreviewed().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no alert: {:?}\n{}",
            hook.json(),
            app.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = unreviewed();
    assert_eq!(got.len(), 1, "{got:?}");
    let a = &got[0];
    assert_eq!(a["type"], "operational");
    assert_eq!(a["severity"], "high");
    let message = a["message"].as_str().unwrap();
    assert!(message.contains("unreviewed change #"), "{message}");
    assert!(message.contains("-youtube = \"strict\""), "{message}");
    assert!(message.contains("+youtube = \"off\""), "{message}");
    assert!(message.contains("line withheld"), "{message}");
    assert!(
        !message.contains("abuse-test"),
        "an illegal-tier entry in an alert: {message}"
    );
    // Seen once: the next reload raises nothing more.
    let r = app.cli(&["reload"], &[]);
    assert!(r.status.success());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(unreviewed().len(), 1);
}

/// `curl` against the API's TLS listener: status code and body. `cacert` is the certificate
/// to trust (none: the system's roots only).
fn curl_api(
    addr: std::net::SocketAddr,
    cacert: Option<&Path>,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(["-X", method]);
    if let Some(c) = cacert {
        cmd.arg("--cacert").arg(c);
    }
    if let Some(t) = token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data", b]);
    }
    let out = cmd
        .arg(format!("https://localhost:{}{path}", addr.port()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The API on a loopback TCP listener with TLS: off unless configured; a self-signed
/// certificate kept in the state directory, its fingerprint logged; the same routes and
/// sign-in as the Unix socket, but no first account without signing in; roles decide who
/// reads pupil-level data (governors never), every view audited; with the school CA the
/// certificate is minted from it.
#[test]
fn the_api_over_tls_on_loopback() {
    // Off by default: no listener, no certificate.
    let plain = start();
    assert!(
        plain.listeners("API listening on https://").is_empty(),
        "{}",
        plain.logs()
    );
    assert!(!plain.dir().join("state/api-tls").exists());
    drop(plain);

    let main = format!("{MAIN}\n[api]\nlisten = \"127.0.0.1:0\"\n");
    let app = start_with(&main);
    let addr = *app
        .listeners("API listening on https://")
        .first()
        .unwrap_or_else(|| panic!("no API listener: {}", app.logs()));
    let cert = app.dir().join("state/api-tls/cert.pem");
    let line = app
        .wait_for("API listening on https://", Duration::from_secs(1))
        .unwrap();
    let fingerprint = line
        .split("SHA-256 fingerprint ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(')')
        .to_owned();
    let openssl = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&openssl.stdout);
    assert!(
        shown.trim().ends_with(&format!("={fingerprint}")),
        "logged {fingerprint}, openssl says {shown}"
    );
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(app.dir().join("state/api-tls/key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o077, 0, "the key is readable by others");

    // Over the network nobody makes the first account without signing in.
    let (code, body) = curl_api(
        addr,
        Some(&cert),
        None,
        "POST",
        "/api/v1/users",
        Some(r#"{"name":"eve","roles":["approver"],"password":"eve-password-1"}"#),
    );
    assert_eq!(code, 401, "{body}");
    // The OpenAPI document is served; the certificate is not trusted without --cacert.
    let (code, body) = curl_api(addr, Some(&cert), None, "GET", "/api/v1/openapi.json", None);
    assert_eq!(code, 200);
    assert!(body.contains("/api/v1/logs"), "{body}");
    let (code, _) = curl_api(addr, None, None, "GET", "/api/v1/openapi.json", None);
    assert_eq!(code, 0, "an untrusted certificate was accepted");

    let (boss, tech, dsl) = accounts(&app);
    let gov = ok(&app, Some(&boss), "", &["user", "token", "gov"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, body) = curl_api(
        addr,
        Some(&cert),
        Some(&tech),
        "GET",
        "/api/v1/whoami",
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"name\":\"tech\""), "{body}");
    let (code, _) = curl_api(
        addr,
        Some(&cert),
        Some("hrw_not-a-token"),
        "GET",
        "/api/v1/whoami",
        None,
    );
    assert_eq!(code, 401);
    // A password alone is not enough over the network for an account whose roles need an
    // authenticator and that has none (on the appliance's own socket it is: the CLI's case).
    let (code, body) = curl_api(
        addr,
        Some(&cert),
        None,
        "POST",
        "/api/v1/login",
        Some(r#"{"name":"boss","password":"boss-password-1"}"#),
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("authenticator"), "{body}");

    // Pupil-level records: the DSL reads them; a governor and a technician do not.
    let _ = hedgerow_testkit::query_blocking(
        [127, 0, 0, 1].into(),
        app.dns_udp,
        "games-test.example",
        hickory_proto::rr::RecordType::A,
        &[],
    );
    let (code, body) = curl_api(
        addr,
        Some(&cert),
        Some(&dsl),
        "POST",
        "/api/v1/logs",
        Some("{}"),
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.trim_end().ends_with("}") && body.contains("{\"end\":"),
        "{body}"
    );
    for (who, token) in [("governor", &gov), ("technician", &tech)] {
        let (code, body) = curl_api(
            addr,
            Some(&cert),
            Some(token),
            "POST",
            "/api/v1/logs",
            Some("{}"),
        );
        assert_eq!(code, 403, "a {who} read the logs: {body}");
        let (code, _) = curl_api(
            addr,
            Some(&cert),
            Some(token),
            "GET",
            "/api/v1/breaches",
            None,
        );
        assert_eq!(code, 403, "a {who} read the breaches");
        let (code, _) = curl_api(
            addr,
            Some(&cert),
            Some(token),
            "GET",
            "/api/v1/export",
            None,
        );
        assert_eq!(code, 403, "a {who} exported the store");
    }
    let (code, _) = curl_api(
        addr,
        Some(&cert),
        Some(&gov),
        "GET",
        "/api/v1/reviews",
        None,
    );
    assert_eq!(code, 403, "a governor read review requests");
    // The CLI is the same client: the DSL's `logs` works, the governor's is refused.
    let out = app.cli_as(&dsl, &["logs"], &["--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = app.cli_as(&gov, &["breaches"], &["list"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A technician may reload; a governor may not.
    let out = app.cli_as(&tech, &["reload"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));
    let out = app.cli_as(&gov, &["reload"], &[]);
    assert!(!out.status.success(), "a governor reloaded");
    let (code, _) = curl_api(
        addr,
        Some(&cert),
        Some(&tech),
        "POST",
        "/api/v1/reload",
        None,
    );
    assert_eq!(code, 200);
    // The reload key works on the appliance's own socket only, not over the network.
    let key = std::fs::read_to_string(app.dir().join("state/reload.key")).unwrap();
    let (code, _) = curl_api(
        addr,
        Some(&cert),
        Some(key.trim()),
        "POST",
        "/api/v1/reload",
        None,
    );
    assert_eq!(code, 401, "the reload key worked over TCP");

    // Every view of pupil-level data is in the audit log, by account, without what the
    // filters named; refusals read nothing and record no view.
    let out = app.cli_as(
        &dsl,
        &["logs"],
        &["--user", "pupil-name-7", "--format", "json"],
    );
    assert!(out.status.success());
    let log = ok(&app, Some(&tech), "", &["audit", "list"]);
    let views: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "view-logs")
        .collect();
    assert_eq!(views.len(), 3, "{log}");
    assert!(views.iter().all(|e| e["actor"] == "dsl"), "{log}");
    assert!(
        views[2]["detail"].as_str().unwrap().contains("\"user\""),
        "{log}"
    );
    assert!(
        !log.to_string().contains("pupil-name-7"),
        "a filter's value in the audit log"
    );
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"reload"), "{actions:?}");
    // The service manager's reload (the reload key) and a signal are recorded as the
    // appliance's own.
    let out = app.cli(&["reload"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.sighup();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = ok(&app, Some(&tech), "", &["audit", "list"]);
        let own: Vec<&Value> = log
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "reload" && e["actor"] == "hedgerow")
            .collect();
        let detail = |via: &str| {
            own.iter()
                .any(|e| e["detail"].as_str().unwrap().contains(via))
        };
        if detail("reload.key") && detail("SIGHUP") {
            break;
        }
        assert!(Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(app);

    // With the school CA the certificate is minted from it: trusting the CA is enough.
    let ca = hedgerow_testkit::TestCa::new("School CA");
    let main = format!(
        "{MAIN}\n[api]\nlisten = \"127.0.0.1:0\"\nnames = [\"hedgerow.school.example\"]\n\n[proxy]\nlisten = [\"127.0.0.1:0\"]\nca_cert = \"{{dir}}/school-ca.pem\"\nca_key = \"{{dir}}/school-ca.key\"\n"
    );
    let app = Appliance::start(
        Path::new(BIN),
        &main,
        &[
            ("groups.toml", GROUPS),
            ("iwf.txt", "http://abuse-test.invalid/gallery/item-1.html\n"),
            ("adult.txt", "adult-test.example\n"),
            ("games.txt", "games-test.example\n"),
            ("school-ca.pem", &ca.cert_pem()),
            ("school-ca.key", &ca.key_pem()),
        ],
        &[],
    );
    let addr = *app.listeners("API listening on https://").first().unwrap();
    assert!(
        app.logs().contains("minted from the school CA"),
        "{}",
        app.logs()
    );
    assert!(!app.dir().join("state/api-tls").exists());
    let (code, body) = curl_api(
        addr,
        Some(&app.dir().join("school-ca.pem")),
        None,
        "GET",
        "/api/v1/openapi.json",
        None,
    );
    assert_eq!(code, 200, "{body}");
}

/// List sources through change control: adding a blocking list tightens (applied at once,
/// in force, comments kept); redefining or removing one loosens (needs an approver); the
/// illegal tier's lists cannot be added, changed or removed, nor its files read as another
/// kind, and the refusal says why; every refusal leaves the files untouched.
#[test]
fn list_sources_through_change_control() {
    let app = Appliance::start(
        Path::new(BIN),
        MAIN,
        &[
            ("groups.toml", GROUPS),
            ("iwf.txt", "http://abuse-test.invalid/gallery/item-1.html\n"),
            ("adult.txt", "adult-test.example\n"),
            ("games.txt", "games-test.example\n"),
            ("social.txt", "social-test.example\n"),
            ("games2.txt", "other-games-test.example\n"),
        ],
        &[],
    );
    let (boss, tech, _dsl) = accounts(&app);
    let read = |name: &str| std::fs::read_to_string(app.dir().join(name)).unwrap();
    let social = format!(
        r#"{{"op":"add-list","name":"social","list":{{"path":"{}/social.txt","format":"domains","category":"games"}}}}"#,
        app.dir().display()
    );
    assert_eq!(verdict(&app, "127.0.0.1", "social-test.example"), "allow");
    let c = through(&app, &tech, &boss, &["--edit", &social], "tightening");
    // The preview sampled the new list's entries.
    assert!(
        c["preview"]["verdicts"]
            .to_string()
            .contains("social-test.example"),
        "{c}"
    );
    assert_eq!(verdict(&app, "127.0.0.1", "social-test.example"), "block");
    assert_eq!(verdict(&app, "127.0.0.1", "games-test.example"), "block");
    assert!(read("hedgerow.toml").contains("[lists.social]"));
    assert!(read("hedgerow.toml").contains("[lists.games]\npath = "));

    // Redefining a list loosens (its new file may hold less): approved, applied, in force.
    let games2 = format!(
        r#"{{"op":"change-list","name":"games","list":{{"path":"{}/games2.txt","format":"domains","category":"games"}}}}"#,
        app.dir().display()
    );
    through(&app, &tech, &boss, &["--edit", &games2], "loosening");
    assert_eq!(verdict(&app, "127.0.0.1", "games-test.example"), "allow");
    assert_eq!(
        verdict(&app, "127.0.0.1", "other-games-test.example"),
        "block"
    );
    // Removing a blocking list loosens.
    let r = through(
        &app,
        &tech,
        &boss,
        &["--remove-list", "social"],
        "loosening",
    );
    assert_eq!(verdict(&app, "127.0.0.1", "social-test.example"), "allow");
    // Its revert puts the list back (a tightening change: applied at once).
    let back = ok(&app, Some(&tech), "", &["change", "revert", &id(&r)]);
    assert_eq!(back["status"], "applied", "{back}");
    assert_eq!(verdict(&app, "127.0.0.1", "social-test.example"), "block");

    // The illegal tier: nothing touches it, whatever the kind of edit.
    let before = file_hashes(&app);
    let dir = app.dir().display().to_string();
    for (edit, why) in [
        (
            format!(
                r#"{{"op":"add-list","name":"police","list":{{"path":"{dir}/social.txt","format":"domains","kind":"illegal","category":"terrorism"}}}}"#
            ),
            "kind \"illegal\"",
        ),
        (
            format!(
                r#"{{"op":"change-list","name":"iwf","list":{{"path":"{dir}/games.txt","format":"urls","kind":"illegal","category":"child-abuse"}}}}"#
            ),
            "illegal-tier list",
        ),
        (
            format!(
                r#"{{"op":"add-list","name":"copy","list":{{"path":"{dir}/iwf.txt","format":"urls","category":"games"}}}}"#
            ),
            "illegal-tier list's",
        ),
        (
            r#"{"op":"remove-list","list":"iwf"}"#.to_owned(),
            "illegal-tier list",
        ),
    ] {
        let (kind, out) = refused(
            &app,
            Some(&tech),
            &[
                "change",
                "propose",
                "--edit",
                &edit,
                "--reason",
                "x",
                "--risk",
                "low",
                "--justification",
                "x",
            ],
        );
        assert_eq!(kind, "illegal-tier", "{edit}: {out}");
        assert!(out.contains(why), "{edit}: {out}");
        assert!(!out.contains("abuse-test"), "{out}");
    }
    assert_eq!(file_hashes(&app), before, "a refused change touched a file");

    // A change that no longer validates when it is applied (its new list file went away
    // after approval) is refused then, says why, and leaves every file as it was.
    std::fs::write(app.dir().join("later.txt"), "later-test.example\n").unwrap();
    let later = format!(
        r#"{{"op":"change-list","name":"social","list":{{"path":"{dir}/later.txt","format":"domains","category":"games"}}}}"#
    );
    let c = propose(&app, &tech, &["--edit", &later]);
    ok(&app, Some(&boss), "", &["change", "approve", &id(&c)]);
    std::fs::remove_file(app.dir().join("later.txt")).unwrap();
    let (kind, out) = refused(&app, Some(&tech), &["change", "apply", &id(&c)]);
    assert_eq!(kind, "validation", "{out}");
    assert!(out.contains("later.txt"), "{out}");
    assert_eq!(
        file_hashes(&app),
        before,
        "a failed application touched a file"
    );
    let shown = ok(&app, Some(&tech), "", &["change", "show", &id(&c)]);
    assert!(
        shown["failure"]
            .as_str()
            .unwrap_or("")
            .contains("later.txt"),
        "{shown}"
    );
    assert_eq!(verdict(&app, "127.0.0.1", "social-test.example"), "block");

    // Its twin: an ordinary allow list is accepted (it loosens).
    let allow = format!(
        r#"{{"op":"add-list","name":"top","list":{{"path":"{dir}/games2.txt","format":"domains","kind":"allow"}}}}"#
    );
    let c = propose(&app, &tech, &["--edit", &allow]);
    assert_eq!(c["direction"], "loosening");
}

/// `[change_control]` makes approval stricter: tightening changes need approvers, two
/// different approvers sign (the same one twice is refused), and the DSL (or deputy)
/// co-signs from medium risk. A looser setting is refused by `check-config` and by
/// `hedgerow reload`, naming its line and why.
#[test]
fn stricter_approval_rules_from_the_configuration() {
    let rules = "\n[change_control]\napprove_tightening = true\ndsl_cosign_from = \"medium\"\napprovers = 2\n";
    let app = start_with(&format!("{MAIN}{rules}"));
    let (boss, tech, dsl) = accounts(&app);
    ok(
        &app,
        Some(&boss),
        "",
        &[
            "user",
            "add",
            "deputy",
            "--roles",
            "deputy-dsl",
            "--no-password",
        ],
    );
    let deputy = ok(&app, Some(&boss), "", &["user", "token", "deputy"])["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Tightening now waits for two approvers.
    let c = propose(&app, &dsl, &["--block", "ks2:tiktok-test.example"]);
    assert_eq!(c["direction"], "tightening");
    assert_eq!(
        c["needs"],
        serde_json::json!(["approver", "approver"]),
        "{c}"
    );
    let (kind, _) = refused(&app, Some(&tech), &["change", "apply", &id(&c)]);
    assert_eq!(kind, "conflict", "a tightening change applied unapproved");
    ok(&app, Some(&boss), "", &["change", "approve", &id(&c)]);
    let (kind, out) = refused(&app, Some(&boss), &["change", "approve", &id(&c)]);
    assert_eq!(kind, "conflict", "{out}");
    assert!(out.contains("already"), "{out}");
    let (kind, _) = refused(&app, Some(&tech), &["change", "apply", &id(&c)]);
    assert_eq!(kind, "conflict", "applied with one approver of two");
    let a = ok(&app, Some(&tech), "", &["change", "approve", &id(&c)]);
    assert_eq!(a["status"], "approved", "{a}");
    ok(&app, Some(&tech), "", &["change", "apply", &id(&c)]);
    assert_eq!(verdict(&app, "127.0.0.1", "tiktok-test.example"), "block");

    // Medium risk needs the DSL (here the deputy: the DSL proposed it) as well.
    let c = ok(
        &app,
        Some(&dsl),
        "",
        &[
            "change",
            "propose",
            "--allow",
            "staff:games-test.example",
            "--reason",
            "lesson",
            "--risk",
            "medium",
            "--justification",
            "staff",
        ],
    );
    assert_eq!(
        c["needs"],
        serde_json::json!(["approver", "approver", "dsl"]),
        "{c}"
    );
    ok(&app, Some(&boss), "", &["change", "approve", &id(&c)]);
    let a = ok(&app, Some(&tech), "", &["change", "approve", &id(&c)]);
    assert_eq!(a["status"], "proposed", "approved without the DSL: {a}");
    let a = ok(&app, Some(&deputy), "", &["change", "approve", &id(&c)]);
    assert_eq!(a["status"], "approved", "{a}");

    // Looser than the defaults: refused at load, with file:line and the reason; the running
    // appliance keeps its rules.
    let loose = std::fs::read_to_string(app.config_path())
        .unwrap()
        .replace("approvers = 2", "approvers = 0");
    std::fs::write(app.config_path(), &loose).unwrap();
    let line = loose
        .lines()
        .position(|l| l.starts_with("approvers"))
        .unwrap()
        + 1;
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(app.config_path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("hedgerow.toml:{line}:")) && err.contains("looser than the default"),
        "{err}"
    );
    let out = app.cli(&["reload"], &[]);
    assert!(!out.status.success(), "a looser rule was reloaded");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only be made stricter"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `curl` against the API's Unix socket (`STATE/api.sock`): status code and body.
fn curl_sock(
    app: &Appliance,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let sock = app.dir().join("state").join("api.sock");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--unix-socket")
        .arg(&sock)
        .args(["-X", method]);
    if let Some(t) = token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data", b]);
    }
    let out = cmd.arg(format!("http://localhost{path}")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn login_body(name: &str, password: &str, code: Option<&str>) -> String {
    serde_json::json!({ "name": name, "password": password, "code": code }).to_string()
}

/// Issue 16's sign-in security on the API socket: five wrong passwords lock an account (429,
/// kind `locked`, even with the right password, through the CLI too) while another account
/// still signs in from the same place; an account that enrolls TOTP needs its code at the
/// API and the CLI (`--totp`), a code is not accepted twice, and an approver's reset puts the
/// password alone back; all of it audited, no password or code in the audit log.
#[test]
fn issue_16_api_sign_in_lockout_and_totp() {
    let app = start();
    ok(
        &app,
        None,
        "boss-password-1\n",
        &["user", "add", "boss", "--roles", "approver"],
    );
    let boss = ok(
        &app,
        None,
        "boss-password-1\n",
        &["user", "token", "boss", "--user", "boss"],
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &app,
        Some(&boss),
        "carol-password-1\n",
        &["user", "add", "carol", "--roles", "dsl"],
    );
    ok(
        &app,
        Some(&boss),
        "tech-password-12\n",
        &["user", "add", "tech", "--roles", "technician"],
    );

    // Twin first: the right password signs in (a DSL without TOTP, on the API).
    let (code, body) = curl_sock(
        &app,
        None,
        "POST",
        "/api/v1/login",
        Some(&login_body("carol", "carol-password-1", None)),
    );
    assert_eq!(code, 200, "{body}");
    let session: Value = serde_json::from_str(&body).unwrap();
    let carol = session["token"].as_str().unwrap().to_owned();
    assert_eq!(session["scope"], "full");
    assert_eq!(session["idle_timeout"], 1800);
    // Signing out ends that session.
    let (code, _) = curl_sock(&app, Some(&carol), "GET", "/api/v1/whoami", None);
    assert_eq!(code, 200);
    let (code, body) = curl_sock(&app, Some(&carol), "POST", "/api/v1/logout", None);
    assert_eq!(code, 200, "{body}");
    let (code, _) = curl_sock(&app, Some(&carol), "GET", "/api/v1/whoami", None);
    assert_eq!(code, 401);

    for i in 1..=5 {
        let (code, body) = curl_sock(
            &app,
            None,
            "POST",
            "/api/v1/login",
            Some(&login_body("carol", "not-her-password", None)),
        );
        assert_eq!(code, 401, "attempt {i}: {body}");
        assert!(body.contains("\"unauthenticated\""), "{body}");
    }
    let (code, body) = curl_sock(
        &app,
        None,
        "POST",
        "/api/v1/login",
        Some(&login_body("carol", "carol-password-1", None)),
    );
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("\"kind\":\"locked\""), "{body}");
    let (success, v, out) = run(
        &app,
        None,
        "carol-password-1\n",
        &["user", "list", "--user", "carol"],
    );
    assert!(!success, "a locked account signed in: {out}");
    assert!(out.contains("too many failed sign-ins"), "{v} {out}");
    // Another account from the same socket is not locked out.
    let (code, body) = curl_sock(
        &app,
        None,
        "POST",
        "/api/v1/login",
        Some(&login_body("tech", "tech-password-12", None)),
    );
    assert_eq!(code, 200, "{body}");
    let tech = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The technician enrolls an authenticator with its session.
    let (code, body) = curl_sock(&app, Some(&tech), "POST", "/api/v1/totp", None);
    assert_eq!(code, 200, "{body}");
    let enrolment: Value = serde_json::from_str(&body).unwrap();
    assert!(enrolment["qr_svg"].as_str().unwrap().starts_with("<svg"));
    let url = enrolment["otpauth_url"].as_str().unwrap();
    let totp = totp_rs::TOTP::from_url(url).unwrap();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (now_code, next_code) = (totp.generate(t0), totp.generate(t0 + 30));
    let (code, body) = curl_sock(
        &app,
        Some(&tech),
        "POST",
        "/api/v1/totp/confirm",
        Some(r#"{"code":"000000x"}"#),
    );
    assert_eq!(code, 400, "a wrong code enrolled: {body}");
    let (code, body) = curl_sock(
        &app,
        Some(&tech),
        "POST",
        "/api/v1/totp/confirm",
        Some(&format!(r#"{{"code":"{now_code}"}}"#)),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"totp_enrolled\":true"), "{body}");

    // Now the password alone is refused on the API and the CLI; with the code it signs in,
    // once.
    let (code, _) = curl_sock(
        &app,
        None,
        "POST",
        "/api/v1/login",
        Some(&login_body("tech", "tech-password-12", None)),
    );
    assert_eq!(code, 401);
    let (success, _, out) = run(
        &app,
        None,
        "tech-password-12\n",
        &["user", "list", "--user", "tech"],
    );
    assert!(!success, "signed in without the code: {out}");
    let listed = ok(
        &app,
        None,
        &format!("tech-password-12\n{next_code}\n"),
        &["user", "list", "--user", "tech", "--totp"],
    );
    let tech_row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "tech")
        .unwrap()
        .clone();
    assert_eq!(tech_row["totp_enrolled"], true);
    let (code, body) = curl_sock(
        &app,
        None,
        "POST",
        "/api/v1/login",
        Some(&login_body("tech", "tech-password-12", Some(&next_code))),
    );
    assert_eq!(code, 401, "a code was accepted twice: {body}");

    // A lost phone: the approver resets it, and the password alone signs in again.
    let (code, body) = curl_sock(
        &app,
        Some(&tech),
        "POST",
        "/api/v1/users/tech/totp/reset",
        None,
    );
    assert_eq!(code, 403, "a technician reset TOTP: {body}");
    let reset = ok(&app, Some(&boss), "", &["user", "totp-reset", "tech"]);
    assert_eq!(reset["totp_enrolled"], false, "{reset}");
    let (code, body) = curl_sock(
        &app,
        None,
        "POST",
        "/api/v1/login",
        Some(&login_body("tech", "tech-password-12", None)),
    );
    assert_eq!(code, 200, "{body}");

    // Audited, without passwords or codes.
    let log = ok(&app, Some(&boss), "", &["audit", "list"]);
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "login",
        "login-failed",
        "lockout",
        "logout",
        "totp-enrol",
        "totp-reset",
    ] {
        assert!(actions.contains(&a), "no {a} in the audit log: {actions:?}");
    }
    let text = log.to_string();
    for secret in [
        "carol-password-1",
        "not-her-password",
        "tech-password-12",
        &now_code,
        &next_code,
        enrolment["secret_base32"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "{secret} is in the audit log");
    }
    // The store holds the secret sealed, its key beside the store.
    let key = app.dir().join("state").join("secrets.key");
    assert_eq!(std::fs::metadata(&key).unwrap().len(), 32);
}

/// The main configuration with `upstreams` in place of its unreachable one.
fn start_with_upstreams(upstreams: &str) -> Appliance {
    let main = MAIN.replace(
        r#"upstreams = [{ address = "127.0.0.1:9" }]"#,
        &format!("upstreams = [{upstreams}]"),
    );
    assert_ne!(main, MAIN);
    start_with(&main)
}

/// Asks the appliance for `name` (A) over UDP, as a ks2 pupil: its answer's addresses.
async fn resolve_a(app: &Appliance, name: &str) -> Vec<std::net::IpAddr> {
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::{RData, RecordType};
    let m = hedgerow_testkit::query(
        app.dns_udp,
        hedgerow_testkit::Transport::Udp,
        name,
        RecordType::A,
    )
    .await
    .unwrap_or_else(|| panic!("no answer for {name}"));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

/// The system status as a technician reads it on the API (`GET /api/v1/system`).
fn system_status(app: &Appliance) -> Value {
    let tech = app.token("tech", "technician");
    let (code, body) = curl_sock(app, Some(&tech), "GET", "/api/v1/system", None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Issue 16's upstream health: the first upstream never answers (a socket that reads and
/// never replies), the second does. Real cache misses are answered by failover, and the
/// technician's system status says which upstream is failing, since when and how (timed
/// out, no answers), and that the second is answering, with its latency. A governor may not
/// read it. After a reload that changes the upstreams, each is matched by address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_system_status_shows_the_failing_upstream_and_the_one_answering() {
    use std::net::{IpAddr, Ipv4Addr};
    let (hole, _hole) = hedgerow_testkit::black_hole().await;
    let up = hedgerow_testkit::UpstreamDns::new()
        .a("one.example", Ipv4Addr::new(192, 0, 2, 1))
        .a("two.example", Ipv4Addr::new(192, 0, 2, 2))
        .start()
        .await;
    let spare = hedgerow_testkit::UpstreamDns::new().start().await;
    let upstreams = format!(
        "{{ address = \"{hole}\" }}, {{ address = \"{}\" }}",
        up.addr
    );
    let app = tokio::task::spawn_blocking(move || start_with_upstreams(&upstreams))
        .await
        .unwrap();
    assert_eq!(
        resolve_a(&app, "one.example").await,
        [IpAddr::from([192, 0, 2, 1])]
    );
    assert_eq!(
        resolve_a(&app, "two.example").await,
        [IpAddr::from([192, 0, 2, 2])]
    );

    tokio::task::block_in_place(|| {
        let s = system_status(&app);
        // A fresh store has no closed part waiting to be indexed by device.
        assert_eq!(s["timeline_parts_waiting"], 0, "{s:#}");
        let rt = &s["runtime"];
        assert_eq!(rt["dns_forwarded"], 2, "{s:#}");
        assert_eq!(rt["dns_servfail"], 0, "{s:#}");
        let ups = rt["upstreams"].as_array().unwrap();
        assert_eq!(ups.len(), 2, "{s:#}");
        let (dead, live) = (&ups[0], &ups[1]);

        assert_eq!(dead["address"], hole.to_string());
        assert_eq!(dead["protocol"], "udp");
        assert_eq!(dead["state"], "failing", "{dead:#}");
        assert_eq!(dead["answers"], 0, "{dead:#}");
        assert_eq!(dead["timeouts"], 2, "both misses waited for it: {dead:#}");
        assert_eq!(dead["errors"], 0, "{dead:#}");
        assert_eq!(dead["last_error"], "timed out", "{dead:#}");
        assert!(dead["last_answer"].is_null(), "{dead:#}");
        assert!(dead["latency_ms"].is_null(), "{dead:#}");
        let since: jiff::Timestamp = dead["failing_since"].as_str().unwrap().parse().unwrap();
        let last: jiff::Timestamp = dead["last_failure"].as_str().unwrap().parse().unwrap();
        assert!(since <= last, "{dead:#}");
        let age = jiff::Timestamp::now().duration_since(since);
        assert!(
            age < jiff::SignedDuration::from_secs(60),
            "failing since this test: {dead:#}"
        );

        assert_eq!(live["address"], up.addr.to_string());
        assert_eq!(live["state"], "answering", "{live:#}");
        assert_eq!(live["answers"], 2, "{live:#}");
        assert_eq!((&live["errors"], &live["timeouts"]), (&0.into(), &0.into()));
        assert!(live["last_error"].is_null(), "{live:#}");
        assert!(live["failing_since"].is_null(), "{live:#}");
        assert!(live["last_answer"].is_string(), "{live:#}");
        let ms = live["latency_ms"].as_f64().unwrap();
        assert!(ms > 0.0 && ms < 1000.0, "{live:#}");

        // Technicians and approvers only.
        let gov = app.token("gov", "governor");
        let (code, body) = curl_sock(&app, Some(&gov), "GET", "/api/v1/system", None);
        assert_eq!(code, 403, "{body}");

        // A reload drops the dead upstream and adds another behind the live one: the live
        // one keeps its counts, the new one has none yet.
        let path = app.config_path();
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text.replace(
            &format!(
                "{{ address = \"{hole}\" }}, {{ address = \"{}\" }}",
                up.addr
            ),
            &format!(
                "{{ address = \"{}\" }}, {{ address = \"{}\" }}",
                up.addr, spare.addr
            ),
        );
        assert_ne!(edited, text);
        std::fs::write(&path, edited).unwrap();
        let r = app.cli(&["reload"], &[]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let s = system_status(&app);
        let ups = s["runtime"]["upstreams"].as_array().unwrap();
        assert_eq!(ups.len(), 2, "{s:#}");
        assert_eq!(ups[0]["address"], up.addr.to_string());
        assert_eq!(ups[0]["state"], "answering", "{s:#}");
        assert_eq!(ups[0]["answers"], 2, "{s:#}");
        assert_eq!(ups[1]["address"], spare.addr.to_string());
        assert_eq!(ups[1]["state"], "not asked yet", "{s:#}");
        assert_eq!(ups[1]["answers"], 0, "{s:#}");
    });
}

/// The twin: with a healthy first upstream the second is never needed, and the status says
/// so ("not asked yet") rather than calling it failing; the first answers with no failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_a_second_upstream_behind_a_healthy_first_is_not_asked_yet() {
    use std::net::{IpAddr, Ipv4Addr};
    let first = hedgerow_testkit::UpstreamDns::new()
        .a("one.example", Ipv4Addr::new(192, 0, 2, 1))
        .start()
        .await;
    let second = hedgerow_testkit::UpstreamDns::new()
        .a("one.example", Ipv4Addr::new(192, 0, 2, 9))
        .start()
        .await;
    let upstreams = format!(
        "{{ address = \"{}\" }}, {{ address = \"{}\" }}",
        first.addr, second.addr
    );
    let app = tokio::task::spawn_blocking(move || start_with_upstreams(&upstreams))
        .await
        .unwrap();
    assert_eq!(
        resolve_a(&app, "one.example").await,
        [IpAddr::from([192, 0, 2, 1])]
    );
    assert!(second.asked().is_empty(), "{:?}", second.asked());

    tokio::task::block_in_place(|| {
        let s = system_status(&app);
        let ups = s["runtime"]["upstreams"].as_array().unwrap();
        assert_eq!(ups.len(), 2, "{s:#}");
        let (one, two) = (&ups[0], &ups[1]);
        assert_eq!(one["address"], first.addr.to_string());
        assert_eq!(one["state"], "answering", "{one:#}");
        assert_eq!(one["answers"], 1, "{one:#}");
        assert_eq!((&one["errors"], &one["timeouts"]), (&0.into(), &0.into()));
        assert!(one["last_error"].is_null(), "{one:#}");

        assert_eq!(two["address"], second.addr.to_string());
        assert_eq!(two["state"], "not asked yet", "{two:#}");
        assert_eq!(
            (&two["answers"], &two["errors"], &two["timeouts"]),
            (&0.into(), &0.into(), &0.into())
        );
        assert!(two["last_answer"].is_null() && two["last_failure"].is_null());
        assert!(two["latency_ms"].is_null(), "{two:#}");
    });
}
