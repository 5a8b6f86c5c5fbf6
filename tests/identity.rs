//! Identity behind the router: the real `hedgerow` binary, a school router in front of it that
//! forwards every query from its own address, and clients on their own addresses behind it.
//! A trusted forwarder's EDNS Client Subnet and MAC options say which client asked; anyone
//! else's are ignored; a listener's own address can choose the group.
//!
//! The router is played three ways: by the test client sending the options itself (every
//! form, both transports, both answer paths); by Debian's dnsmasq on loopback with
//! `--add-subnet`; and by dnsmasq in a network namespace with clients on their own links and
//! MACs, with `--add-mac` in its three forms (skipped unless root with dnsmasq installed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hedgerow_testkit::{
    Appliance, Dnsmasq, Netns, RunningUpstream, Transport, UpstreamDns, answer_options,
    client_subnet, query_blocking, query_with_options,
};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

/// EDNS option codes: client subnet, dnsmasq's raw MAC, and its text/base64 device id.
const ECS: u16 = 8;
const MAC: u16 = 65001;
const DEVICE_ID: u16 = 65073;

/// The library PC's MAC, in each form dnsmasq sends.
const LIBRARY_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x03, 0x07];
const LIBRARY_MAC_TEXT: &str = "02:00:5e:00:03:07";
const LIBRARY_MAC_BASE64: &str = "AgBeAAMH";

/// Three groups with three answers for two names: KS2 blocks games, staff block neither, and
/// the library (a registered device, by MAC) may play games but not watch video.
fn config(listen: &str, ks2: &str, staff: &str, dns_extra: &str, more: &str) -> String {
    format!(
        r#"
[server]
state_dir = "{{dir}}/state"
timezone = "Europe/London"

[dns]
listen = [{listen}]
upstreams = [{{ address = "{{upstream}}" }}]
timeout = "1s"
rate_limit_qps = 0
{dns_extra}

[lists.iwf]
path = "{{dir}}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.adult]
path = "{{dir}}/adult.txt"
format = "domains"
category = "adult"

[lists.games]
path = "{{dir}}/games.txt"
format = "domains"
category = "games"

[groups.ks2]
networks = [{ks2}]
block_categories = ["adult", "games"]
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"

[groups.staff]
networks = [{staff}]
block_categories = ["adult"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"

[groups.library]
networks = ["198.51.100.0/24"]
block_categories = ["adult"]
block = ["video.example"]
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"

[[devices]]
name = "Library-PC-3"
mac = "{LIBRARY_MAC_TEXT}"
group = "library"
user = "librarian"
{more}
"#
    )
}

const FILES: [(&str, &str); 3] = [
    ("adult.txt", "adult.example\n"),
    ("games.txt", "games.example\n"),
    ("iwf.txt", "http://iwf-test.invalid/a.html\n"),
];

fn zone() -> UpstreamDns {
    UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::new(192, 0, 2, 1))
        .a("games.example", Ipv4Addr::new(192, 0, 2, 67))
        .a("video.example", Ipv4Addr::new(192, 0, 2, 68))
        .a("www.google.com", Ipv4Addr::new(192, 0, 2, 10))
        .a(
            "forcesafesearch.google.com",
            Ipv4Addr::new(216, 239, 38, 120),
        )
}

/// Starts the appliance (in `netns` when given), letting the other tasks run while it waits
/// for the "ready" line.
fn launch(cfg: &str, up: &RunningUpstream, netns: Option<&Netns>) -> Appliance {
    let cfg = cfg.replace("{upstream}", &up.addr.to_string());
    tokio::task::block_in_place(|| match netns {
        Some(ns) => Appliance::start_in(ns, BIN.as_ref(), &cfg, &FILES, &[]),
        None => Appliance::start(BIN.as_ref(), &cfg, &FILES, &[]),
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ecs(client: &str) -> (u16, Vec<u8>) {
    (ECS, client_subnet(ip(client), 32))
}

/// What a client is told: the answer code and addresses.
fn gist(m: &Message) -> (ResponseCode, Vec<IpAddr>) {
    let addrs = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect();
    (m.metadata.response_code, addrs)
}

fn nx() -> (ResponseCode, Vec<IpAddr>) {
    (ResponseCode::NXDomain, vec![])
}

fn a(last: u8) -> (ResponseCode, Vec<IpAddr>) {
    (ResponseCode::NoError, vec![IpAddr::from([192, 0, 2, last])])
}

/// Access events as JSON values.
fn events(app: &Appliance, at_least: usize) -> Vec<serde_json::Value> {
    app.events(at_least, Duration::from_secs(5))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The (client, group, device, target, outcome) of every event.
fn who_asked(events: &[serde_json::Value]) -> Vec<[String; 5]> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    events
        .iter()
        .map(|e| {
            [
                s(&e["client"]),
                s(&e["group"]),
                s(&e["device"]),
                s(&e["target"]),
                s(&e["outcome"]),
            ]
        })
        .collect()
}

fn row(client: &str, group: &str, device: &str, target: &str, outcome: &str) -> [String; 5] {
    [client, group, device, target, outcome].map(str::to_owned)
}

/// No query the upstream saw carried anything that names a pupil.
fn assert_stripped(up: &RunningUpstream) {
    let seen = up.options_seen();
    assert!(!seen.is_empty(), "the upstream was never asked");
    for codes in &seen {
        for c in [ECS, MAC, DEVICE_ID] {
            assert!(
                !codes.contains(&c),
                "option {c} reached the upstream: {seen:?}"
            );
        }
    }
}

// === the router played by the test client ===

const ROUTER: &str = "127.0.0.53";

fn loopback_config(dns_extra: &str) -> String {
    config(
        "\"127.0.0.1:0\"",
        "\"127.0.10.0/24\"",
        "\"127.0.20.0/24\"",
        &format!("trusted_forwarders = [\"{ROUTER}\"]\n{dns_extra}"),
        "[[devices]]\nname = \"KS2-iPad-07\"\nip = \"127.0.10.7\"\nuser = \"pupil07\"\n",
    )
}

async fn ask(
    app: &Appliance,
    from: &str,
    t: Transport,
    name: &str,
    options: &[(u16, Vec<u8>)],
) -> Message {
    let server = match t {
        Transport::Udp => app.dns_udp,
        Transport::Tcp => app.dns_tcp,
    };
    query_with_options(ip(from), server, t, name, RecordType::A, options)
        .await
        .unwrap_or_else(|| panic!("no answer for {name} from {from}\n{}", app.logs()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_forwarder_names_each_client_by_subnet_or_mac_on_both_paths() {
    let up = zone().start().await;
    let app = launch(&loopback_config(""), &up, None);
    let mac_forms = [
        (MAC, LIBRARY_MAC.to_vec()),
        (DEVICE_ID, LIBRARY_MAC_TEXT.as_bytes().to_vec()),
        (DEVICE_ID, LIBRARY_MAC_BASE64.as_bytes().to_vec()),
    ];
    let cookie = (10, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    // (what the router says, name, expected answer)
    let mut cases = vec![
        (vec![ecs("127.0.10.5")], "games.example", nx()),
        (vec![ecs("127.0.10.5")], "video.example", a(68)),
        (vec![ecs("127.0.20.5")], "games.example", a(67)),
        (
            vec![cookie.clone(), ecs("127.0.20.5")],
            "video.example",
            a(68),
        ),
        (vec![ecs("127.0.10.7")], "games.example", nx()),
        // Without options the router is itself the client, and it is in no group.
        (vec![], "games.example", (ResponseCode::Refused, vec![])),
    ];
    for mac in &mac_forms {
        cases.push((vec![mac.clone()], "games.example", a(67)));
        cases.push((vec![mac.clone()], "video.example", nx()));
        cases.push((vec![ecs("127.0.10.9"), mac.clone()], "video.example", nx()));
    }
    // UDP twice (a cache miss, then the fast path's cache hit) and TCP (the full path).
    for (options, name, want) in &cases {
        for t in [Transport::Udp, Transport::Udp, Transport::Tcp] {
            let m = ask(&app, ROUTER, t, name, options).await;
            assert_eq!(&gist(&m), want, "{name} {options:?} over {t:?}");
            // The subnet goes back with its scope set to the whole prefix: the answer is for
            // that client alone.
            let echoed: Vec<_> = answer_options(&m)
                .into_iter()
                .filter(|(c, _)| *c == ECS)
                .collect();
            match options.iter().find(|(c, _)| *c == ECS) {
                Some((_, data)) => {
                    let mut scoped = data.clone();
                    scoped[3] = scoped[2];
                    assert_eq!(echoed, [(ECS, scoped)], "{name} {options:?} over {t:?}");
                }
                None => assert!(echoed.is_empty(), "{echoed:?}"),
            }
        }
    }
    let events = events(&app, cases.len() * 3);
    let seen = who_asked(&events);
    for want in [
        row("127.0.10.5", "ks2", "-", "games.example", "blocked"),
        row("127.0.10.5", "ks2", "-", "video.example", "forwarded"),
        row("127.0.20.5", "staff", "-", "games.example", "forwarded"),
        row("127.0.20.5", "staff", "-", "video.example", "forwarded"),
        row(
            "127.0.10.7",
            "ks2",
            "KS2-iPad-07",
            "games.example",
            "blocked",
        ),
        row(ROUTER, "-", "-", "games.example", "refused"),
        // By MAC alone the address is the router's; with a subnet, the client's.
        row(
            ROUTER,
            "library",
            "Library-PC-3",
            "games.example",
            "forwarded",
        ),
        row(
            ROUTER,
            "library",
            "Library-PC-3",
            "video.example",
            "blocked",
        ),
        row(
            "127.0.10.9",
            "library",
            "Library-PC-3",
            "video.example",
            "blocked",
        ),
    ] {
        let n = seen.iter().filter(|r| **r == want).count();
        // Every MAC form, three times each; the others three times.
        let times = if want[2] == "Library-PC-3" { 9 } else { 3 };
        assert_eq!(n, times, "{want:?} in\n{seen:#?}");
    }
    assert_eq!(seen.len(), cases.len() * 3, "{seen:#?}");
    let user = events
        .iter()
        .find(|e| e["device"] == "Library-PC-3")
        .unwrap();
    assert_eq!(user["user"], "librarian");
    assert_stripped(&up);
}

#[tokio::test(flavor = "multi_thread")]
async fn options_from_anyone_else_are_ignored_counted_and_logged_once_a_minute() {
    let up = zone().start().await;
    let mut app = launch(&loopback_config(""), &up, None);
    // A pupil claims to be a member of staff, then the library PC.
    let pupil = "127.0.10.9";
    for t in [Transport::Udp, Transport::Udp, Transport::Tcp] {
        let m = ask(&app, pupil, t, "games.example", &[ecs("127.0.20.5")]).await;
        assert_eq!(gist(&m), nx(), "{t:?}");
        assert!(answer_options(&m).is_empty(), "nothing echoed");
        let m = ask(
            &app,
            pupil,
            t,
            "video.example",
            &[(MAC, LIBRARY_MAC.to_vec())],
        )
        .await;
        assert_eq!(gist(&m), a(68), "{t:?}");
    }
    // The twin: the same pupil's plain queries and other options are not counted.
    let m = ask(
        &app,
        pupil,
        Transport::Udp,
        "allowed.example",
        &[(10, vec![9; 8])],
    )
    .await;
    assert_eq!(gist(&m), a(1));
    let seen = who_asked(&events(&app, 7));
    assert_eq!(
        seen.iter()
            .filter(|r| r[0] == pupil && r[1] == "ks2" && r[2] == "-")
            .count(),
        7,
        "{seen:#?}"
    );
    let warning = "not in [dns] trusted_forwarders";
    assert!(
        app.wait_for(warning, Duration::from_secs(2)).is_some(),
        "{}",
        app.logs()
    );
    assert!(
        app.logs().contains(&format!("sender={pupil}")),
        "{}",
        app.logs()
    );
    app.stop();
    let logs = app.logs();
    assert_eq!(logs.matches(warning).count(), 1, "{logs}");
    assert!(logs.contains("untrusted_identity=6"), "{logs}");
    assert_stripped(&up);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_options_from_the_forwarder_leave_it_the_client_on_both_paths() {
    let up = zone().start().await;
    let cfg = loopback_config("").replace(
        "[groups.staff]\nnetworks = [\"127.0.20.0/24\"]",
        "[groups.staff]\nnetworks = [\"127.0.20.0/24\", \"127.0.0.53/32\"]",
    );
    let app = launch(&cfg, &up, None);
    // The router is in the staff network, so a misread option would show as staff.
    let bad = [
        vec![(ECS, vec![0, 1, 24, 0, 127, 0, 10, 5])], // more address than the prefix
        vec![(MAC, LIBRARY_MAC[..5].to_vec())],        // a short MAC
        vec![(DEVICE_ID, b"not-a-mac".to_vec())],
    ];
    for options in &bad {
        for t in [Transport::Udp, Transport::Udp, Transport::Tcp] {
            let m = ask(&app, ROUTER, t, "games.example", options).await;
            assert_eq!(gist(&m), a(67), "{options:?} over {t:?}");
        }
    }
    assert!(
        app.wait_for("do not read", Duration::from_secs(2))
            .is_some(),
        "{}",
        app.logs()
    );
    let seen = who_asked(&events(&app, 9));
    assert!(
        seen.iter().all(|r| r[0] == ROUTER && r[1] == "staff"),
        "{seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_and_safesearch_follow_the_identified_client() {
    let up = zone().start().await;
    let cfg = loopback_config("").replace("rate_limit_qps = 0", "rate_limit_qps = 5");
    let app = launch(&cfg, &up, None);
    let mut refused = 0;
    for _ in 0..40 {
        let m = ask(
            &app,
            ROUTER,
            Transport::Udp,
            "allowed.example",
            &[ecs("127.0.10.5")],
        )
        .await;
        if m.metadata.response_code == ResponseCode::Refused {
            refused += 1;
        }
    }
    assert!(
        (20..=30).contains(&refused),
        "burst of 10 then refused: {refused}"
    );
    assert!(
        app.wait_for("client=127.0.10.5", Duration::from_secs(2))
            .is_some_and(|l| l.contains("over its DNS rate limit")),
        "{}",
        app.logs()
    );
    // Another pupil behind the same router, and a device named only by MAC, are not limited.
    for options in [vec![ecs("127.0.10.6")], vec![(MAC, LIBRARY_MAC.to_vec())]] {
        for _ in 0..8 {
            let m = ask(&app, ROUTER, Transport::Udp, "allowed.example", &options).await;
            assert_eq!(gist(&m), a(1), "{options:?}");
        }
    }
    // SafeSearch is the identified client's group's: on for KS2, off for staff.
    let m = ask(
        &app,
        ROUTER,
        Transport::Udp,
        "www.google.com",
        &[ecs("127.0.10.6")],
    )
    .await;
    assert_eq!(
        gist(&m),
        (ResponseCode::NoError, vec![ip("216.239.38.120")])
    );
    let m = ask(
        &app,
        ROUTER,
        Transport::Udp,
        "www.google.com",
        &[ecs("127.0.20.6")],
    )
    .await;
    assert_eq!(gist(&m), a(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_address_a_query_arrives_on_can_choose_the_group() {
    let up = zone().start().await;
    // Two listeners: 127.0.0.1 serves by network, 127.0.0.2 is the staff VLAN's address.
    let cfg = loopback_config("")
        .replace(
            "listen = [\"127.0.0.1:0\"]",
            "listen = [\"127.0.0.1:0\", \"127.0.0.2:0\"]",
        )
        .replace(
            "[groups.staff]\nnetworks = [\"127.0.20.0/24\"]",
            "[groups.staff]\nnetworks = [\"127.0.20.0/24\"]\nlisten_addresses = [\"127.0.0.2\"]",
        );
    let app = launch(&cfg, &up, None);
    let udp = app.listeners("listening for DNS/UDP on ");
    let tcp = app.listeners("listening for DNS/TCP on ");
    let on = |list: &[SocketAddr], host: [u8; 4]| {
        *list.iter().find(|a| a.ip() == IpAddr::from(host)).unwrap()
    };
    // The same pupil (a router forwarding the pupil VLAN from 127.0.10.1) asks both.
    for (t, list) in [(Transport::Udp, &udp), (Transport::Tcp, &tcp)] {
        for _ in 0..2 {
            let m = query_with_options(
                ip("127.0.10.1"),
                on(list, [127, 0, 0, 1]),
                t,
                "games.example",
                RecordType::A,
                &[],
            )
            .await
            .unwrap();
            assert_eq!(gist(&m), nx(), "pupil VLAN over {t:?}");
            let m = query_with_options(
                ip("127.0.10.1"),
                on(list, [127, 0, 0, 2]),
                t,
                "games.example",
                RecordType::A,
                &[],
            )
            .await
            .unwrap();
            assert_eq!(gist(&m), a(67), "staff VLAN over {t:?}");
        }
    }
    // A registered device keeps its own group on any address.
    let m = query_with_options(
        ip(ROUTER),
        on(&udp, [127, 0, 0, 2]),
        Transport::Udp,
        "video.example",
        RecordType::A,
        &[(MAC, LIBRARY_MAC.to_vec())],
    )
    .await
    .unwrap();
    assert_eq!(gist(&m), nx());
    let seen = who_asked(&events(&app, 9));
    assert_eq!(
        seen.iter()
            .filter(|r| r[0] == "127.0.10.1" && r[1] == "staff")
            .count(),
        4,
        "{seen:#?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|r| r[0] == "127.0.10.1" && r[1] == "ks2")
            .count(),
        4,
        "{seen:#?}"
    );
}

// === the router played by dnsmasq ===

/// A free UDP port on `host`, for dnsmasq to listen on.
fn free_port(host: &str) -> u16 {
    std::net::UdpSocket::bind((ip(host), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn dnsmasq_on_loopback_forwards_each_clients_subnet_and_hedgerow_strips_it() {
    if !Dnsmasq::available() {
        eprintln!("SKIPPED: needs dnsmasq (apt-get install dnsmasq-base)");
        return;
    }
    let up = zone().start().await;
    let app = launch(&loopback_config(""), &up, None);
    // The school router: listens on 127.0.0.77, forwards from 127.0.0.53 with each client's
    // address, replacing any subnet or MAC the client sent itself.
    let router = "127.0.0.77";
    let port = free_port(router);
    let dnsmasq = Dnsmasq::start(
        None,
        &[
            format!("--listen-address={router}"),
            format!("--port={port}"),
            format!(
                "--server={}#{}@{ROUTER}",
                app.dns_udp.ip(),
                app.dns_udp.port()
            ),
            "--add-subnet=32,128".into(),
            "--strip-subnet".into(),
            "--add-mac".into(),
            "--strip-mac".into(),
        ],
    );
    let server = SocketAddr::new(ip(router), port);
    let via = |from: &'static str, name: &'static str, options: Vec<(u16, Vec<u8>)>| async move {
        query_with_options(
            ip(from),
            server,
            Transport::Udp,
            name,
            RecordType::A,
            &options,
        )
        .await
        .unwrap_or_else(|| panic!("no answer for {name} from {from} through dnsmasq"))
    };
    for _ in 0..2 {
        assert_eq!(
            gist(&via("127.0.10.5", "games.example", vec![]).await),
            nx()
        );
        assert_eq!(
            gist(&via("127.0.20.5", "games.example", vec![]).await),
            a(67)
        );
        assert_eq!(
            gist(&via("127.0.10.7", "games.example", vec![]).await),
            nx()
        );
        assert_eq!(
            gist(&via("127.0.10.7", "video.example", vec![]).await),
            a(68)
        );
        // A pupil's own subnet or MAC option is replaced by the router's truth.
        let forged = vec![ecs("127.0.20.5"), (MAC, LIBRARY_MAC.to_vec())];
        assert_eq!(
            gist(&via("127.0.10.5", "games.example", forged).await),
            nx()
        );
    }
    let seen = who_asked(&events(&app, 10));
    for (want, times) in [
        (row("127.0.10.5", "ks2", "-", "games.example", "blocked"), 4),
        (
            row("127.0.20.5", "staff", "-", "games.example", "forwarded"),
            2,
        ),
        (
            row(
                "127.0.10.7",
                "ks2",
                "KS2-iPad-07",
                "games.example",
                "blocked",
            ),
            2,
        ),
        (
            row(
                "127.0.10.7",
                "ks2",
                "KS2-iPad-07",
                "video.example",
                "forwarded",
            ),
            2,
        ),
    ] {
        let n = seen.iter().filter(|r| **r == want).count();
        assert_eq!(n, times, "{want:?} in\n{seen:#?}\n{}", dnsmasq.logs());
    }
    assert_eq!(seen.len(), 10, "{seen:#?}");
    assert!(!seen.iter().any(|r| r[0] == ROUTER), "{seen:#?}");
    assert_stripped(&up);
}

#[tokio::test(flavor = "multi_thread")]
async fn dnsmasq_as_the_school_router_between_namespaces_identifies_pupils_staff_and_devices() {
    if !Netns::available() || !Dnsmasq::available() {
        eprintln!("SKIPPED: needs root and dnsmasq (apt-get install dnsmasq-base)");
        return;
    }
    // Hosts, each a namespace of its own: the appliance, the router, and three clients on
    // their own links behind the router. Nothing is added to this machine's own namespace.
    let appliance = Netns::create("appliance");
    let router = Netns::create("router");
    let pupil = Netns::create("pupil");
    let staff = Netns::create("staff");
    let library = Netns::create("library");
    router.link("a0", "10.99.0.1/24", &appliance, "r0", "10.99.0.2/24", None);
    router.link(
        "p0",
        "10.99.1.1/24",
        &pupil,
        "eth0",
        "10.99.1.5/24",
        Some("02:00:5e:00:01:05"),
    );
    router.link(
        "s0",
        "10.99.2.1/24",
        &staff,
        "eth0",
        "10.99.2.5/24",
        Some("02:00:5e:00:02:05"),
    );
    router.link(
        "l0",
        "10.99.3.1/24",
        &library,
        "eth0",
        "10.99.3.7/24",
        Some(LIBRARY_MAC_TEXT),
    );

    let up = zone().start_in(&appliance).await;
    let cfg = config(
        "\"10.99.0.2:53\"",
        "\"10.99.1.0/24\", \"10.99.3.0/24\"",
        "\"10.99.2.0/24\"",
        "trusted_forwarders = [\"10.99.0.1\"]",
        "",
    );
    let app = launch(&cfg, &up, Some(&appliance));
    // One dnsmasq per MAC form, on ports 53, 54 and 55 of the router's three addresses.
    let forms: [(u16, &str); 3] = [
        (53, "--add-mac"),
        (54, "--add-mac=base64"),
        (55, "--add-mac=text"),
    ];
    let routers: Vec<Dnsmasq> = forms
        .iter()
        .map(|(port, form)| {
            Dnsmasq::start(
                Some(&router),
                &[
                    "--listen-address=10.99.1.1,10.99.2.1,10.99.3.1".into(),
                    format!("--port={port}"),
                    "--server=10.99.0.2#53".into(),
                    "--add-subnet=32,128".into(),
                    "--strip-subnet".into(),
                    (*form).into(),
                    "--strip-mac".into(),
                ],
            )
        })
        .collect();
    let ask = |host: &Netns, from: &str, gateway: &str, port: u16, name: &str| {
        let (from, server) = (ip(from), SocketAddr::new(ip(gateway), port));
        host.run(|| query_blocking(from, server, name, RecordType::A, &[]))
            .unwrap_or_else(|| panic!("no answer for {name} from {from} on port {port}"))
    };
    for (port, form) in forms {
        for _ in 0..2 {
            let m = ask(&pupil, "10.99.1.5", "10.99.1.1", port, "games.example");
            assert_eq!(gist(&m), nx(), "pupil, {form}");
            let m = ask(&staff, "10.99.2.5", "10.99.2.1", port, "games.example");
            assert_eq!(gist(&m), a(67), "staff, {form}");
            // The library PC sits in a KS2 network; its MAC makes it the library's.
            let m = ask(&library, "10.99.3.7", "10.99.3.1", port, "games.example");
            assert_eq!(gist(&m), a(67), "library, {form}");
            let m = ask(&library, "10.99.3.7", "10.99.3.1", port, "video.example");
            assert_eq!(gist(&m), nx(), "library, {form}");
            // The twin: the pupil is not blocked from video.
            let m = ask(&pupil, "10.99.1.5", "10.99.1.1", port, "video.example");
            assert_eq!(gist(&m), a(68), "pupil, {form}");
        }
    }
    let seen = who_asked(&events(&app, 30));
    let logs = || {
        routers
            .iter()
            .map(Dnsmasq::logs)
            .collect::<Vec<_>>()
            .join("\n")
    };
    for want in [
        row("10.99.1.5", "ks2", "-", "games.example", "blocked"),
        row("10.99.1.5", "ks2", "-", "video.example", "forwarded"),
        row("10.99.2.5", "staff", "-", "games.example", "forwarded"),
        row(
            "10.99.3.7",
            "library",
            "Library-PC-3",
            "games.example",
            "forwarded",
        ),
        row(
            "10.99.3.7",
            "library",
            "Library-PC-3",
            "video.example",
            "blocked",
        ),
    ] {
        let n = seen.iter().filter(|r| **r == want).count();
        assert_eq!(n, 6, "{want:?} in\n{seen:#?}\n{}", logs());
    }
    assert_eq!(seen.len(), 30, "{seen:#?}");
    let user = events(&app, 30)
        .into_iter()
        .find(|e| e["device"] == "Library-PC-3")
        .unwrap();
    assert_eq!(user["user"], "librarian");
    assert_stripped(&up);
    drop(routers);
    drop(app);
    drop(up);
}
