//! The category vocabulary and the bundled configuration's categories, end to end: the real
//! binary runs `config/lists.toml` and `config/policy.toml` as shipped (with the sample lists in
//! `blocklists/`), and for every category a sample host is blocked for a Key Stage 2 pupil
//! through real DNS packets and through the proxy with curl, named in the access log (id and
//! display name), in `lookup` and on the block page; each has its does-not-over-block twin (a
//! staff or guest device for the school's own categories, a must-allow help site for the
//! UKSIC ones). Generative AI is blocked for pupils and allowed for staff. The vocabulary,
//! `docs/categories.md` and the bundled configuration are checked against each other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use hedgerow_model::{Category, Uksic, VOCABULARY, category_info};
use hedgerow_testkit::{Appliance, Origin, Transport, UpstreamDns, query_from};
use hickory_proto::rr::{RData, RecordType};
use support::{repo, text};

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

/// A Key Stage 2 pupil: `[groups.ks2]` covers 127.0.0.0/8 in the bundled policy.
const PUPIL: [u8; 4] = [127, 0, 0, 1];
/// A registered staff device and a guest device (devices.toml written by the test).
const STAFF: [u8; 4] = [127, 0, 0, 20];
const GUEST: [u8; 4] = [127, 0, 0, 30];
const BLOCKPAGE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);

/// One row per category the bundled configuration blocks for pupils: the category, a host on
/// its sample list, and the twin that must not be blocked (a host, and who asks for it).
struct Case {
    category: &'static str,
    blocked: &'static str,
    twin: &'static str,
    twin_from: [u8; 4],
}

const fn case(
    category: &'static str,
    blocked: &'static str,
    twin: &'static str,
    twin_from: [u8; 4],
) -> Case {
    Case {
        category,
        blocked,
        twin,
        twin_from,
    }
}

/// The UKSIC categories' twins are help services on the must-allow list, asked for by the
/// same pupil: `talktofrank.com` is on the drugs list too (as on UT1's), and the allow list
/// wins. The school's own categories' twins are the same host asked for by a group that
/// allows the category.
const CASES: &[Case] = &[
    case("adult", "www.adult-site.example", "www.nspcc.org.uk", PUPIL),
    case(
        "discrimination",
        "discrimination-board.example",
        "equalityhumanrights.com",
        PUPIL,
    ),
    case(
        "drugs",
        "buy-drugs-online.example",
        "talktofrank.com",
        PUPIL,
    ),
    case(
        "extremism",
        "extremist-propaganda.example",
        "educateagainsthate.com",
        PUPIL,
    ),
    case("gambling", "casino-online.example", "gamcare.org.uk", PUPIL),
    case("hate", "racial-hatred.example", "stophateuk.org", PUPIL),
    case("malware", "phish-login.example", "www.ncsc.gov.uk", PUPIL),
    case("hacking", "ddos-booter.example", "www.bbc.co.uk", PUPIL),
    case("circumvention", "proxysite.com", "oak.org.uk", PUPIL),
    case(
        "misinformation",
        "fake-cures.example",
        "fullfact.org",
        PUPIL,
    ),
    case("piracy", "torrent-index.example", "scratch.mit.edu", PUPIL),
    case(
        "self-harm",
        "pro-ana-tips.example",
        "www.samaritans.org",
        PUPIL,
    ),
    case("violence", "gore-videos.example", "childline.org.uk", PUPIL),
    case("vawg", "misogyny-forum.example", "womensaid.org.uk", PUPIL),
    case("games", "roblox.com", "roblox.com", GUEST),
    case("social", "www.instagram.com", "www.instagram.com", STAFF),
    case("genai", "chatgpt.com", "chatgpt.com", STAFF),
    case("dating", "tinder.com", "tinder.com", GUEST),
    case("chat", "chatroulette.com", "chatroulette.com", STAFF),
];

/// The bundled `lists.toml` and `policy.toml` with their list paths made absolute, a device
/// registry putting `STAFF` and `GUEST` in their groups, and a main file with port-0
/// listeners, the test's upstream and a proxy that may reach the loopback origin.
fn files() -> Vec<(&'static str, String)> {
    let blocklists = repo().join("blocklists").display().to_string();
    let read = |name: &str| {
        std::fs::read_to_string(repo().join("config").join(name))
            .unwrap()
            .replace("../blocklists", &blocklists)
    };
    vec![
        ("lists.toml", read("lists.toml")),
        ("policy.toml", read("policy.toml")),
        (
            "devices.toml",
            "[[devices]]\nname = \"Staff-Laptop-1\"\nip = \"127.0.0.20\"\ngroup = \"staff\"\n\n\
             [[devices]]\nname = \"Visitor-Phone\"\nip = \"127.0.0.30\"\ngroup = \"guest\"\n"
                .to_owned(),
        ),
    ]
}

fn main_config(upstream: SocketAddr) -> String {
    format!(
        r#"
include = ["lists.toml", "policy.toml", "devices.toml"]

[server]
state_dir = "{{dir}}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{upstream}" }}]
rate_limit_qps = 0
blockpage_ipv4 = "{BLOCKPAGE}"

[proxy]
listen = ["127.0.0.1:0"]
allow_destinations = ["127.0.0.0/8"]
"#
    )
}

fn a_records(m: &hickory_proto::op::Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// Runs curl through the proxy from `from`; returns (HTTP status, body).
fn curl(proxy: SocketAddr, from: [u8; 4], url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(["-x", &format!("http://{proxy}"), "--noproxy", ""])
        .args(["--interface", &IpAddr::from(from).to_string()])
        .arg(url)
        .output()
        .expect("curl (Debian package curl) must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// `hedgerow logs --format csv` rows as (target, client, category, category_name, verdict).
fn csv_rows(app: &Appliance) -> Vec<[String; 5]> {
    let out = app.cli(&["logs"], &["--format", "csv", "--limit", "100000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let cols = [
        col("target"),
        col("client"),
        col("category"),
        col("category_name"),
        col("verdict"),
    ];
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            cols.map(|c| r[c].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bundled_category_blocks_pupils_and_names_itself_without_over_blocking() {
    let mut zone = UpstreamDns::new();
    let names: BTreeSet<&str> = CASES.iter().flat_map(|c| [c.blocked, c.twin]).collect();
    for name in names {
        zone = zone.a(name, Ipv4Addr::LOCALHOST);
    }
    let up = zone.start().await;
    let origin = Origin::http().await;
    let config = main_config(up.addr);
    let app = tokio::task::spawn_blocking(move || {
        let files = files();
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        Appliance::start(BIN.as_ref(), &config, &refs, &[])
    })
    .await
    .unwrap();
    let proxy = app.proxy.expect("proxy address in the log");
    let port = origin.addr.port();

    for c in CASES {
        let name = category_info(c.category).unwrap().name;
        // DNS: the pupil gets the block page's address, over UDP and TCP.
        for t in [Transport::Udp, Transport::Tcp] {
            let m = query_from(
                IpAddr::from(PUPIL),
                if t == Transport::Udp {
                    app.dns_udp
                } else {
                    app.dns_tcp
                },
                t,
                c.blocked,
                RecordType::A,
                Some(1232),
            )
            .await
            .unwrap_or_else(|| panic!("no answer for {}", c.blocked));
            assert_eq!(a_records(&m), vec![BLOCKPAGE], "{} {t:?}", c.category);
        }
        // Twin: not blocked, answered from upstream.
        let m = query_from(
            IpAddr::from(c.twin_from),
            app.dns_udp,
            Transport::Udp,
            c.twin,
            RecordType::A,
            Some(1232),
        )
        .await
        .unwrap_or_else(|| panic!("no answer for {}", c.twin));
        assert_eq!(
            a_records(&m),
            vec![Ipv4Addr::LOCALHOST],
            "{} twin {} from {:?}",
            c.category,
            c.twin,
            c.twin_from
        );

        // The proxy: the block page names the category by its display name and id.
        let url = format!("http://{}:{port}/page", c.blocked);
        let (code, page) = tokio::task::block_in_place(|| curl(proxy, PUPIL, &url));
        assert_eq!(code, 403, "{}: {page}", c.category);
        let shown = format!(
            "<span id=\"category\">{}</span> (<code id=\"category-id\">{}</code>)",
            name.replace('\'', "&#39;"),
            c.category
        );
        assert!(page.contains(&shown), "{}: {page}", c.category);
        // Twin through the proxy: the origin answers.
        let url = format!("http://{}:{port}/page", c.twin);
        let (code, page) = tokio::task::block_in_place(|| curl(proxy, c.twin_from, &url));
        assert_eq!(code, 200, "{} twin {}: {page}", c.category, c.twin);
        assert!(page.contains(&format!("host {}:{port}", c.twin)), "{page}");
    }

    // The access log names each block's category by id and display name, on both fronts.
    let deadline = Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows = tokio::task::block_in_place(|| csv_rows(&app));
        // Per case: two DNS queries and a proxy request blocked, a DNS query and a proxy
        // request of the twin's.
        if rows.len() >= CASES.len() * 5 || Instant::now() >= deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for c in CASES {
        let name = category_info(c.category).unwrap().name;
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| r[1] == "127.0.0.1" && r[0].contains(c.blocked))
            .collect();
        assert_eq!(mine.len(), 3, "{}: {rows:?}", c.category);
        for r in mine {
            assert_eq!(
                (r[2].as_str(), r[3].as_str(), r[4].as_str()),
                (c.category, name, "block"),
                "{r:?}"
            );
        }
        let twin = rows
            .iter()
            .filter(|r| r[1] == IpAddr::from(c.twin_from).to_string() && r[0].contains(c.twin))
            .collect::<Vec<_>>();
        assert_eq!(twin.len(), 2, "{} twin: {rows:?}", c.category);
        assert!(twin.iter().all(|r| r[4] == "allow"), "{twin:?}");
    }

    // lookup explains the block with the category's id and display name.
    for c in CASES {
        let config = app.config_path().display().to_string();
        let out = support::hedgerow(&[
            "lookup",
            "--config",
            &config,
            "--client",
            "127.0.0.1",
            "--json",
            c.blocked,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["verdict"]["action"], "block", "{v}");
        assert_eq!(v["verdict"]["category"], c.category, "{v}");
        assert_eq!(
            v["verdict"]["category_name"],
            category_info(c.category).unwrap().name,
            "{v}"
        );
    }
}

/// Generative AI per group: blocked for Key Stage 2, allowed for staff, on both fronts, for
/// chat assistants and image generators alike; the category is on the staff's verdicts too
/// (so the logs show staff use of AI tools).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generative_ai_is_blocked_for_pupils_and_allowed_for_staff() {
    let hosts = [
        "chatgpt.com",
        "gemini.google.com",
        "midjourney.com",
        "claude.ai",
    ];
    let mut zone = UpstreamDns::new().a("www.google.com", Ipv4Addr::LOCALHOST);
    for h in hosts {
        zone = zone.a(h, Ipv4Addr::LOCALHOST);
    }
    let up = zone.start().await;
    let origin = Origin::http().await;
    let config = main_config(up.addr);
    let app = tokio::task::spawn_blocking(move || {
        let files = files();
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        Appliance::start(BIN.as_ref(), &config, &refs, &[])
    })
    .await
    .unwrap();
    let proxy = app.proxy.unwrap();
    for h in hosts {
        let ask = |from: [u8; 4]| {
            query_from(
                IpAddr::from(from),
                app.dns_udp,
                Transport::Udp,
                h,
                RecordType::A,
                Some(1232),
            )
        };
        assert_eq!(
            a_records(&ask(PUPIL).await.unwrap()),
            vec![BLOCKPAGE],
            "{h}"
        );
        assert_eq!(
            a_records(&ask(STAFF).await.unwrap()),
            vec![Ipv4Addr::LOCALHOST],
            "{h}"
        );
        let url = format!("http://{h}:{}/", origin.addr.port());
        let (code, page) = tokio::task::block_in_place(|| curl(proxy, PUPIL, &url));
        assert_eq!(code, 403, "{h}: {page}");
        assert!(page.contains("Generative AI tools"), "{page}");
        let (code, _) = tokio::task::block_in_place(|| curl(proxy, STAFF, &url));
        assert_eq!(code, 200, "{h} for staff");
    }
    // Blocking gemini.google.com does not block Google itself.
    let m = query_from(
        IpAddr::from(PUPIL),
        app.dns_udp,
        Transport::Udp,
        "www.google.com",
        RecordType::A,
        Some(1232),
    )
    .await
    .unwrap();
    assert_ne!(a_records(&m), vec![BLOCKPAGE]);
    let staff = tokio::task::block_in_place(|| {
        let config = app.config_path().display().to_string();
        support::hedgerow(&[
            "lookup",
            "--config",
            &config,
            "--client",
            "127.0.0.20",
            "--json",
            "chatgpt.com",
        ])
    });
    let v: serde_json::Value = serde_json::from_slice(&staff.stdout).unwrap();
    assert_eq!(v["group"], "staff");
    assert_eq!(
        (&v["verdict"]["action"], &v["verdict"]["category"]),
        (&"allow".into(), &"genai".into())
    );

    // The DSL finds every use of AI tools by the category's display name: the pupils' blocks
    // and the staff's allowed requests (a DNS query and a proxy request each per host), and
    // nothing else (www.google.com is not among them).
    let deadline = Instant::now() + Duration::from_secs(20);
    let events = loop {
        let out = tokio::task::block_in_place(|| {
            app.cli(
                &["logs"],
                &["--category", "generative ai TOOLS", "--format", "json"],
            )
        });
        assert!(out.status.success(), "{}", text(&out.stderr));
        let events: Vec<serde_json::Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if events.len() >= hosts.len() * 4 || Instant::now() >= deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(events.len(), hosts.len() * 4, "{events:?}");
    assert!(
        events.iter().all(|e| e["category"] == "genai"),
        "{events:?}"
    );
    let by = |client: &str, action: &str| {
        events
            .iter()
            .filter(|e| e["client"] == client && e["action"] == action)
            .count()
    };
    assert_eq!(by("127.0.0.1", "block"), hosts.len() * 2);
    assert_eq!(by("127.0.0.20", "allow"), hosts.len() * 2);
}

/// An unknown category in a configuration is refused by `check-config` and by `run`, naming
/// the file, line and column, with the id it most likely meant.
#[test]
fn a_category_outside_the_vocabulary_is_refused_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut policy = String::new();
    for (name, text) in files() {
        let text = if name == "policy.toml" {
            policy = text.replacen("\"genai\",", "\"generative-ai\",", 1);
            policy.clone()
        } else {
            text
        };
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::write(
        dir.path().join("hedgerow.toml"),
        main_config("127.0.0.1:5300".parse().unwrap())
            .replace("{dir}", &dir.path().display().to_string()),
    )
    .unwrap();
    let line = policy
        .lines()
        .position(|l| l.contains("\"generative-ai\""))
        .unwrap()
        + 1;
    let column = policy
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("\"generative-ai\"")
        .unwrap()
        + 1;
    let main = dir.path().join("hedgerow.toml");
    for cmd in ["check-config", "run"] {
        let args: Vec<&str> = if cmd == "run" {
            vec!["run", "--config", main.to_str().unwrap()]
        } else {
            vec!["check-config", main.to_str().unwrap()]
        };
        let out = support::hedgerow(&args);
        let err = text(&out.stderr) + &text(&out.stdout);
        assert!(!out.status.success(), "{cmd}: {err}");
        assert!(
            err.contains(&format!("policy.toml:{line}:{column}: ")),
            "{cmd}: {err}"
        );
        assert!(
            err.contains("category \"generative-ai\", which is not in the category vocabulary (did you mean \"genai\"?)"),
            "{cmd}: {err}"
        );
    }
    // Twin: the bundled policy as shipped is accepted.
    std::fs::write(
        dir.path().join("policy.toml"),
        policy.replace("\"generative-ai\",", "\"genai\","),
    )
    .unwrap();
    let out = support::hedgerow(&["check-config", main.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The bundled configuration has a sample list for every category of the vocabulary outside
/// the illegal tier, Key Stage 2 and Early Years block all of them (the school's policy names
/// pornography, racial hatred, extremism and gaming; UKSIC names the rest), and every category
/// the configuration names is documented in docs/categories.md with its display name.
#[test]
fn the_bundled_configuration_and_the_published_policy_cover_the_vocabulary() {
    let config = hedgerow_config::load(&repo().join("config/hedgerow.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let listed: BTreeSet<&str> = config
        .lists
        .iter()
        .filter(|l| l.kind == hedgerow_config::ListKind::Block)
        .filter_map(|l| l.category.as_ref().map(Category::as_str))
        .collect();
    let filtered: BTreeSet<&str> = VOCABULARY
        .iter()
        .filter(|c| c.uksic != Some(Uksic::IllegalContent))
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, filtered);
    for group in ["ks2", "early-years"] {
        let g = config.group(group).unwrap();
        let blocked: BTreeSet<&str> = g.block_categories.iter().map(Category::as_str).collect();
        assert_eq!(blocked, filtered, "{group}");
    }
    // The school's policy (../shared/seeds/002): pornography, racial hatred, extremism, gaming.
    let staff = config.group("staff").unwrap();
    for c in ["adult", "hate", "extremism"] {
        assert!(
            staff.block_categories.iter().any(|b| b.as_str() == c),
            "{c}"
        );
    }
    // Staff may use generative AI; the guest network blocks every UKSIC category.
    assert!(!staff.block_categories.iter().any(|b| b.as_str() == "genai"));
    let guest = config.group("guest").unwrap();
    for c in VOCABULARY.iter().filter(|c| c.uksic.is_some()) {
        if c.uksic != Some(Uksic::IllegalContent) {
            assert!(
                guest.block_categories.iter().any(|b| b.as_str() == c.id),
                "{}",
                c.id
            );
        }
    }

    let docs = std::fs::read_to_string(repo().join("docs/categories.md")).unwrap();
    for c in VOCABULARY {
        let row = format!("| `{}` | {} |", c.id, c.name);
        assert!(docs.contains(&row), "docs/categories.md lacks {row}");
        if let Some(u) = c.uksic {
            assert!(docs.contains(u.name()), "{}", u.name());
        }
    }
}
