//! The DNS resolver end to end: the real `hedgerow` binary on port 0, a local upstream DNS
//! server started by each test, and real UDP and TCP queries sent from different loopback
//! addresses, each a client in a different group.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hedgerow_testkit::{
    Appliance, RunningUpstream, Transport, UpstreamDns, query_from, raw_udp, strict,
};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::svcb::SvcParamKey;
use hickory_proto::rr::{RData, RecordType};

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

/// Clients: .1 nxdomain group, .2 null group, .3 blockpage group (a registered device),
/// .4 staff (adult only, no SafeSearch), .6 an unfiltered group; .5 is in no group.
const NX: [u8; 4] = [127, 0, 0, 1];
const NULL: [u8; 4] = [127, 0, 0, 2];
const PAGE: [u8; 4] = [127, 0, 0, 3];
const STAFF: [u8; 4] = [127, 0, 0, 4];
const STRANGER: [u8; 4] = [127, 0, 0, 5];
const OPEN: [u8; 4] = [127, 0, 0, 6];

fn config(upstreams: &str, extra_dns: &str) -> String {
    format!(
        r#"
[server]
state_dir = "{{dir}}/state"
timezone = "Europe/London"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{upstreams}]
timeout = "1s"
rate_limit_qps = 0
blockpage_ipv4 = "192.0.2.80"
blockpage_ipv6 = "2001:db8::80"
{extra_dns}

[dns.cache]
max_ttl = "60s"

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

[groups.nx]
networks = ["127.0.0.1/32"]
block_categories = ["adult", "games"]
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"

[groups.null]
networks = ["127.0.0.2/32"]
block_categories = ["adult", "games"]
safesearch = "on"
youtube = "moderate"
dns_block = "null"

[groups.page]
networks = ["127.0.0.3/32"]
block_categories = ["adult", "games"]
safesearch = "on"
youtube = "strict"
dns_block = "blockpage"

[groups.staff]
networks = ["127.0.0.4/32"]
block_categories = ["adult", "games"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"

[[groups.staff.schedule]]
name = "games after school"
allow_categories = ["games"]
days = ["weekdays"]
from = "15:30"
to = "17:00"

[groups.open]
networks = ["127.0.0.6/32"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"

[[devices]]
name = "Library-PC-3"
ip = "127.0.0.3"
user = "library"
"#
    )
}

/// `bücher.example` is listed in Unicode, `münchen.example` as its IDNA A-label.
const ADULT: &str = "adult.example\nbücher.example\n";
const GAMES: &str = "games.example\nxn--mnchen-3ya.example\n";

fn zone() -> UpstreamDns {
    UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::new(192, 0, 2, 1))
        .aaaa("allowed.example", "2001:db8::1".parse().unwrap())
        .mx("allowed.example", "mail.allowed.example")
        .txt("allowed.example", "v=spf1 -all")
        .a("notadult.example", Ipv4Addr::new(192, 0, 2, 2))
        .a("adult.example", Ipv4Addr::new(192, 0, 2, 66))
        .a("www.adult.example", Ipv4Addr::new(192, 0, 2, 66))
        .a("games.example", Ipv4Addr::new(192, 0, 2, 67))
        .a("www.google.com", Ipv4Addr::new(192, 0, 2, 10))
        .a(
            "forcesafesearch.google.com",
            Ipv4Addr::new(216, 239, 38, 120),
        )
        .a("www.youtube.com", Ipv4Addr::new(192, 0, 2, 11))
        .a("restrict.youtube.com", Ipv4Addr::new(216, 239, 38, 119))
        .a(
            "restrictmoderate.youtube.com",
            Ipv4Addr::new(216, 239, 38, 120),
        )
        .cname("redirect.example", "cdn.adult.example")
        .a("cdn.adult.example", Ipv4Addr::new(192, 0, 2, 66))
        .cname("alias.example", "allowed.example")
        .https_with_ech("ech.example")
        .big_txt("big.example", 12)
        .cname("alias-big.example", "big.example")
        .a("bücher.example", Ipv4Addr::new(192, 0, 2, 30))
        .a("bücherei.example", Ipv4Addr::new(192, 0, 2, 31))
        .a("xn--bcherei-n2a.example", Ipv4Addr::new(192, 0, 2, 31))
        .a_ttl("cached.example", Ipv4Addr::new(192, 0, 2, 5), 3600)
}

/// Runs the appliance with `cfg`, the two list files and `extra` files, off the async
/// workers (starting waits for the "ready" line).
async fn launch(cfg: String, extra: &[(&str, &str)], env: &[(&str, &str)]) -> Appliance {
    let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let mut files = owned(&[
        ("adult.txt", ADULT),
        ("games.txt", GAMES),
        ("iwf.txt", "http://iwf-test.invalid/a.html\n"),
    ]);
    files.extend(owned(extra));
    let env = owned(env);
    tokio::task::spawn_blocking(move || {
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        Appliance::start(BIN.as_ref(), &cfg, &files, &env)
    })
    .await
    .unwrap()
}

async fn start_with(upstreams: &str, extra_dns: &str, env: &[(&str, &str)]) -> Appliance {
    launch(config(upstreams, extra_dns), &[], env).await
}

async fn start() -> (RunningUpstream, Appliance) {
    let up = zone().start().await;
    let app = start_with(&format!("{{ address = \"{}\" }}", up.addr), "", &[]).await;
    (up, app)
}

async fn ask(
    app: &Appliance,
    from: [u8; 4],
    t: Transport,
    name: &str,
    qtype: RecordType,
) -> Message {
    let server = match t {
        Transport::Udp => app.dns_udp,
        Transport::Tcp => app.dns_tcp,
    };
    query_from(IpAddr::from(from), server, t, name, qtype, Some(1232))
        .await
        .unwrap_or_else(|| panic!("no answer for {name} {qtype} from {from:?}\n{}", app.logs()))
}

fn a_records(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn cname_target(m: &Message) -> Option<String> {
    m.answers.iter().find_map(|r| match &r.data {
        RData::CNAME(c) => Some(c.0.to_ascii()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_names_are_forwarded_over_udp_and_tcp() {
    let (up, app) = start().await;
    for t in [Transport::Udp, Transport::Tcp] {
        let m = ask(&app, NX, t, "allowed.example", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_records(&m), [IpAddr::from([192, 0, 2, 1])]);
        assert!(m.metadata.recursion_available);
    }
    let m = ask(
        &app,
        NX,
        Transport::Udp,
        "allowed.example",
        RecordType::AAAA,
    )
    .await;
    assert_eq!(a_records(&m), ["2001:db8::1".parse::<IpAddr>().unwrap()]);
    let m = ask(
        &app,
        NX,
        Transport::Udp,
        "nonexistent.example",
        RecordType::A,
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(up.queries() >= 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn blocked_names_and_subdomains_get_nxdomain_and_lookalikes_do_not() {
    let (up, app) = start().await;
    for name in [
        "adult.example",
        "www.adult.example",
        "a.b.c.adult.example",
        "ADULT.Example",
    ] {
        let m = ask(&app, NX, Transport::Udp, name, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(m.answers.is_empty());
        assert!(
            m.authorities
                .iter()
                .any(|r| r.record_type() == RecordType::SOA),
            "{name}: SOA for negative caching"
        );
    }
    // The over-blocking twin: a name that only ends the same way is forwarded and answered.
    let m = ask(&app, NX, Transport::Udp, "notadult.example", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m), [IpAddr::from([192, 0, 2, 2])]);
    // Blocked names never reach the upstream.
    assert!(
        up.asked()
            .iter()
            .all(|(n, _)| !n.ends_with("adult.example") || n == "notadult.example"),
        "{:?}",
        up.asked()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_query_type_is_blocked_in_every_mode() {
    let (up, app) = start().await;
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::HTTPS,
        RecordType::SVCB,
        RecordType::MX,
        RecordType::TXT,
        RecordType::CNAME,
        RecordType::ANY,
    ];
    for qtype in types {
        for t in [Transport::Udp, Transport::Tcp] {
            let m = ask(&app, NX, t, "www.adult.example", qtype).await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NXDomain,
                "nxdomain mode {qtype}"
            );

            let m = ask(&app, NULL, t, "www.adult.example", qtype).await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NoError,
                "null mode {qtype}"
            );
            let want: Vec<IpAddr> = match qtype {
                RecordType::A => vec![Ipv4Addr::UNSPECIFIED.into()],
                RecordType::AAAA => vec![Ipv6Addr::UNSPECIFIED.into()],
                _ => vec![],
            };
            assert_eq!(a_records(&m), want, "null mode {qtype}");
            if want.is_empty() {
                assert!(m.answers.is_empty(), "null mode {qtype}: no data");
            }

            let m = ask(&app, PAGE, t, "www.adult.example", qtype).await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NoError,
                "blockpage mode {qtype}"
            );
            let want: Vec<IpAddr> = match qtype {
                RecordType::A => vec![IpAddr::from([192, 0, 2, 80])],
                RecordType::AAAA => vec!["2001:db8::80".parse().unwrap()],
                _ => vec![],
            };
            assert_eq!(a_records(&m), want, "blockpage mode {qtype}");
            if want.is_empty() {
                assert!(m.answers.is_empty(), "blockpage mode {qtype}: no data");
            }
        }
    }
    assert!(
        up.asked().iter().all(|(n, _)| n != "www.adult.example"),
        "{:?}",
        up.asked()
    );
    // Twin: the same client's allowed names resolve in every mode.
    for from in [NX, NULL, PAGE] {
        let m = ask(&app, from, Transport::Udp, "allowed.example", RecordType::A).await;
        assert_eq!(a_records(&m), [IpAddr::from([192, 0, 2, 1])]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn safesearch_is_enforced_per_group() {
    let (_up, app) = start().await;
    let m = ask(&app, NX, Transport::Udp, "www.google.com", RecordType::A).await;
    assert_eq!(
        cname_target(&m).as_deref(),
        Some("forcesafesearch.google.com.")
    );
    assert_eq!(a_records(&m), [IpAddr::from([216, 239, 38, 120])]);
    let m = ask(&app, NX, Transport::Udp, "www.youtube.com", RecordType::A).await;
    assert_eq!(cname_target(&m).as_deref(), Some("restrict.youtube.com."));
    let m = ask(&app, NULL, Transport::Udp, "www.youtube.com", RecordType::A).await;
    assert_eq!(
        cname_target(&m).as_deref(),
        Some("restrictmoderate.youtube.com.")
    );
    // Twin: staff have SafeSearch off and get the engine's own answer.
    let m = ask(&app, STAFF, Transport::Udp, "www.google.com", RecordType::A).await;
    assert_eq!(cname_target(&m), None);
    assert_eq!(a_records(&m), [IpAddr::from([192, 0, 2, 10])]);
    let events = app.events(4, Duration::from_secs(5));
    assert!(
        events
            .iter()
            .any(|e| e.contains("\"outcome\":\"safe-search\"")
                && e.contains("google -> forcesafesearch.google.com")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn circumvention_canaries_are_answered_locally_for_everyone() {
    let (up, app) = start().await;
    for from in [NX, STAFF, OPEN] {
        for name in [
            "use-application-dns.net",
            "mask.icloud.com",
            "mask-h2.icloud.com",
        ] {
            let m = ask(&app, from, Transport::Udp, name, RecordType::A).await;
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        }
        let m = ask(
            &app,
            from,
            Transport::Udp,
            "_dns.resolver.arpa",
            RecordType::SVCB,
        )
        .await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty(), "DDR gets no data");
    }
    assert!(up.asked().iter().all(|(n, _)| !n.contains("icloud")
        && !n.contains("resolver.arpa")
        && !n.contains("use-application-dns")));
    let events = app.events(12, Duration::from_secs(5));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.contains("\"outcome\":\"circumvention\""))
            .count(),
        12,
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_outside_the_networks_are_refused() {
    let (up, app) = start().await;
    for t in [Transport::Udp, Transport::Tcp] {
        let m = ask(&app, STRANGER, t, "allowed.example", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(m.answers.is_empty());
    }
    assert_eq!(up.queries(), 0, "an open resolver would have forwarded");
    let events = app.events(2, Duration::from_secs(5));
    assert!(
        events.iter().all(
            |e| e.contains("\"outcome\":\"refused\"") && e.contains("\"client\":\"127.0.0.5\"")
        ),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cname_into_a_blocked_name_is_blocked() {
    let (_up, app) = start().await;
    let m = ask(&app, NX, Transport::Udp, "redirect.example", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask(
        &app,
        PAGE,
        Transport::Udp,
        "redirect.example",
        RecordType::A,
    )
    .await;
    assert_eq!(a_records(&m), [IpAddr::from([192, 0, 2, 80])]);
    // Twin: a CNAME into an allowed name resolves through.
    let m = ask(&app, NX, Transport::Udp, "alias.example", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m), [IpAddr::from([192, 0, 2, 1])]);
    let events = app.events(3, Duration::from_secs(5));
    assert!(
        events
            .iter()
            .any(|e| e.contains("\"target\":\"redirect.example\"")
                && e.contains("\"rule\":\"adult.example\"")),
        "{events:?}"
    );
}

/// Found by fuzzing (fuzz/fuzz_targets/dns_wire.rs): hickory writes a label's leading `-` as
/// `\-`, so the full path (TCP, and UDP queries the fast path passes on) read
/// `-x.adult.example` as a name no list entry matched, and forwarded it, while the fast path
/// blocked it.
#[tokio::test(flavor = "multi_thread")]
async fn a_name_with_a_leading_hyphen_label_is_blocked_on_both_paths() {
    let (up, app) = start().await;
    let ours = |m: &Message| {
        m.authorities.iter().any(|r| match &r.data {
            RData::SOA(soa) => soa.mname.to_ascii() == "hedgerow.invalid.",
            _ => false,
        })
    };
    for t in [Transport::Udp, Transport::Tcp] {
        let m = ask(&app, NX, t, "-x.adult.example", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{t:?}");
        assert!(ours(&m), "{t:?}: not our block answer: {m:?}");
        // Twin: such a name that is not listed goes to the upstream.
        let m = ask(&app, NX, t, "-x.allowed.example", RecordType::A).await;
        assert!(!ours(&m), "{t:?}: blocked: {m:?}");
    }
    let asked = up.asked();
    assert!(
        asked.iter().all(|(n, _)| !n.ends_with("x.adult.example")),
        "{asked:?}"
    );
    assert!(
        asked.iter().any(|(n, _)| n.ends_with("x.allowed.example")),
        "{asked:?}"
    );
}

/// Found by fuzzing (fuzz/fuzz_targets/dns_fast.rs): the fast path did not copy the CD
/// (checking disabled) bit into its answers, as the full path does (RFC 4035 §3.1.6), so one
/// query got different answers from the two paths.
#[tokio::test(flavor = "multi_thread")]
async fn the_checking_disabled_bit_is_copied_into_fast_path_answers() {
    let (_up, app) = start().await;
    let wait = Duration::from_secs(2);
    // A block, a forwarded answer, the same from the cache, and the twin without the bit.
    for (name, cd) in [
        ("adult.example.", true),
        ("allowed.example.", true),
        ("allowed.example.", true),
        ("allowed.example.", false),
        ("adult.example.", false),
    ] {
        let mut q = Message::query();
        q.metadata.id = 77;
        q.metadata.recursion_desired = true;
        q.metadata.checking_disabled = cd;
        q.add_query(hickory_proto::op::Query::query(
            name.parse().unwrap(),
            RecordType::A,
        ));
        let reply = raw_udp(app.dns_udp, &q.to_vec().unwrap(), wait)
            .await
            .unwrap_or_else(|| panic!("no answer for {name}"));
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.metadata.checking_disabled, cd, "{name} cd={cd}");
        assert!(reply.metadata.recursion_desired, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ech_is_stripped_for_filtered_groups_only() {
    let (_up, app) = start().await;
    let has_ech = |m: &Message| {
        m.answers.iter().any(|r| match &r.data {
            RData::HTTPS(h) => {
                h.0.svc_params
                    .iter()
                    .any(|(k, _)| *k == SvcParamKey::EchConfigList)
            }
            _ => false,
        })
    };
    let m = ask(&app, NX, Transport::Udp, "ech.example", RecordType::HTTPS).await;
    assert_eq!(m.answers.len(), 1);
    assert!(!has_ech(&m), "filtered group must not get ECH");
    let m = ask(&app, OPEN, Transport::Udp, "ech.example", RecordType::HTTPS).await;
    assert!(has_ech(&m), "an unfiltered group keeps ECH");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_answers_truncate_over_udp_and_arrive_whole_over_tcp() {
    let (_up, app) = start().await;
    let src = IpAddr::from(NX);
    let small = query_from(
        src,
        app.dns_udp,
        Transport::Udp,
        "big.example",
        RecordType::TXT,
        None,
    )
    .await
    .unwrap();
    assert!(small.metadata.truncation, "a 512-byte client must see TC");
    // Whole records only (the strict parse in the testkit checks every byte): twelve TXT
    // records of 200 bytes are one set, and none of it fits.
    assert!(small.answers.is_empty(), "{small:?}");
    assert!(small.edns.is_none(), "no OPT for a client without EDNS");
    // A client with EDNS at 512 bytes: the OPT record stays.
    let opt = query_from(
        src,
        app.dns_udp,
        Transport::Udp,
        "big.example",
        RecordType::TXT,
        Some(512),
    )
    .await
    .unwrap();
    assert!(opt.metadata.truncation);
    assert_eq!(opt.edns.as_ref().map(|e| e.max_payload()), Some(512));
    // A set that fits is kept whole, the one that does not is left out: the CNAME, no TXT.
    for edns in [None, Some(512)] {
        let m = query_from(
            src,
            app.dns_udp,
            Transport::Udp,
            "alias-big.example",
            RecordType::TXT,
            edns,
        )
        .await
        .unwrap();
        assert!(m.metadata.truncation, "{m:?}");
        let types: Vec<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(types, [RecordType::CNAME], "{m:?}");
        assert_eq!(m.edns.is_some(), edns.is_some());
    }
    let tcp = query_from(
        src,
        app.dns_tcp,
        Transport::Tcp,
        "big.example",
        RecordType::TXT,
        None,
    )
    .await
    .unwrap();
    assert!(!tcp.metadata.truncation);
    assert_eq!(
        tcp.answers.len(),
        12,
        "upstream TC was followed by a TCP retry"
    );
    let big = query_from(
        src,
        app.dns_udp,
        Transport::Udp,
        "big.example",
        RecordType::TXT,
        Some(4096),
    )
    .await
    .unwrap();
    assert!(!big.metadata.truncation);
    assert_eq!(
        big.answers.len(),
        12,
        "a 4096-byte EDNS client gets it all over UDP"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn names_sent_as_raw_utf8_are_matched_as_their_idna_form() {
    // Some clients put a Unicode name in the query as raw UTF-8 bytes rather than its
    // xn-- form. The testkit sends a name with characters outside ASCII that way.
    let (up, app) = start().await;
    for t in [Transport::Udp, Transport::Tcp] {
        for name in [
            // Listed in Unicode: asked raw, in other cases, below it, and as its A-label.
            "bücher.example",
            "BÜCHER.Example",
            "www.bücher.example",
            "xn--bcher-kva.example",
            // Listed as an A-label: asked raw and as the A-label.
            "münchen.example",
            "xn--mnchen-3ya.example",
        ] {
            let m = ask(&app, NX, t, name, RecordType::A).await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NXDomain,
                "{name} over {t:?}"
            );
            let m = ask(&app, NULL, t, name, RecordType::A).await;
            assert_eq!(a_records(&m), [IpAddr::from([0, 0, 0, 0])], "{name} {t:?}");
        }
        // The twins: an unlisted Unicode name, raw and as its A-label, and the listed name for
        // a group that blocks nothing, are forwarded and answered.
        for (from, name, ip) in [
            (NX, "bücherei.example", [192, 0, 2, 31]),
            (NX, "xn--bcherei-n2a.example", [192, 0, 2, 31]),
            (OPEN, "bücher.example", [192, 0, 2, 30]),
        ] {
            let m = ask(&app, from, t, name, RecordType::A).await;
            assert_eq!(
                (m.metadata.response_code, a_records(&m)),
                (ResponseCode::NoError, vec![IpAddr::from(ip)]),
                "{name} from {from:?} over {t:?}"
            );
        }
    }
    // The blocked names never reached the upstream; the allowed ones went as asked.
    let asked: Vec<String> = up.asked().into_iter().map(|(n, _)| n).collect();
    assert!(asked.iter().all(|n| !n.contains("mnchen")), "{asked:?}");
    assert!(asked.iter().any(|n| n == "bücherei.example"), "{asked:?}");
    // The log names the listed name in its IDNA form, whatever form was asked.
    let events = tokio::task::block_in_place(|| app.events(30, Duration::from_secs(5)));
    assert!(
        events
            .iter()
            .any(|e| e.contains("\"target\":\"xn--bcher-kva.example\"")
                && e.contains("\"outcome\":\"blocked\"")),
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_are_cached_for_their_clamped_ttl() {
    let (up, app) = start().await;
    let m1 = ask(&app, NX, Transport::Udp, "cached.example", RecordType::A).await;
    let m2 = ask(&app, NX, Transport::Udp, "cached.example", RecordType::A).await;
    assert_eq!(a_records(&m2), [IpAddr::from([192, 0, 2, 5])]);
    let asked = up
        .asked()
        .iter()
        .filter(|(n, _)| n == "cached.example")
        .count();
    assert_eq!(asked, 1, "the second answer came from the cache");
    // max_ttl = 60s clamps the upstream's 3600.
    assert!(
        m1.answers[0].ttl <= 60 && m2.answers[0].ttl <= 60,
        "{} {}",
        m1.answers[0].ttl,
        m2.answers[0].ttl
    );
    // Negative answers are cached too.
    ask(&app, NX, Transport::Udp, "missing.example", RecordType::A).await;
    ask(&app, NX, Transport::Udp, "missing.example", RecordType::A).await;
    assert_eq!(
        up.asked()
            .iter()
            .filter(|(n, _)| n == "missing.example")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_upstream_gets_servfail_within_the_timeout_and_failover_works() {
    let (hole, _task) = hedgerow_testkit::black_hole().await;
    let app = start_with(&format!("{{ address = \"{hole}\" }}"), "", &[]).await;
    let started = Instant::now();
    let m = ask(&app, NX, Transport::Udp, "allowed.example", RecordType::A).await;
    let took = started.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1900),
        "{took:?}"
    );
    // Blocked names need no upstream at all.
    let m = ask(&app, NX, Transport::Udp, "adult.example", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // The dead upstream is an error in the log, not a block.
    let events = tokio::task::block_in_place(|| settled_events(&app, 2));
    let what: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default();
            (s("target"), s("outcome"), s("verdict"))
        })
        .collect();
    assert_eq!(
        what,
        [
            ("allowed.example", "failed", "error"),
            ("adult.example", "blocked", "block")
        ]
    );
    drop(app);

    // Failover: the first upstream is down, the second answers.
    let up = zone().start().await;
    let app = start_with(
        &format!(
            "{{ address = \"{hole}\" }}, {{ address = \"{}\" }}",
            up.addr
        ),
        "",
        &[],
    )
    .await;
    let m = ask(&app, NX, Transport::Udp, "allowed.example", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m), [IpAddr::from([192, 0, 2, 1])]);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_packets_get_formerr_or_are_dropped_and_never_stop_the_server() {
    let (_up, app) = start().await;
    let wait = Duration::from_millis(300);
    // Shorter than a header: dropped.
    assert!(
        raw_udp(app.dns_udp, &[0x12, 0x34, 0x01], wait)
            .await
            .is_none()
    );
    // A header that promises a question that is not there: FORMERR.
    let header_only = [0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    let reply = raw_udp(app.dns_udp, &header_only, wait)
        .await
        .expect("an answer to a readable header");
    let reply = strict(&reply);
    assert_eq!(
        (reply.metadata.id, reply.metadata.response_code),
        (0xabcd, ResponseCode::FormErr)
    );
    // Two questions: FORMERR.
    let mut two = Message::query();
    two.metadata.id = 7;
    two.add_query(hickory_proto::op::Query::query(
        "a.example.".parse().unwrap(),
        RecordType::A,
    ));
    two.add_query(hickory_proto::op::Query::query(
        "b.example.".parse().unwrap(),
        RecordType::A,
    ));
    let reply = raw_udp(app.dns_udp, &two.to_vec().unwrap(), wait)
        .await
        .unwrap();
    assert_eq!(strict(&reply).metadata.response_code, ResponseCode::FormErr);
    // A label running past the end of the packet, and random garbage.
    let mut bad = header_only.to_vec();
    bad.extend_from_slice(&[0x3f, b'a', b'b']);
    let _ = raw_udp(app.dns_udp, &bad, wait).await;
    for seed in 0..200u32 {
        let junk: Vec<u8> = (0..(seed % 97 + 1))
            .map(|i| (i.wrapping_mul(2_654_435_761u32.wrapping_add(seed)) >> 13) as u8)
            .collect();
        let _ = raw_udp(app.dns_udp, &junk, Duration::from_millis(5)).await;
    }
    // A bogus TCP frame, then a normal query: the server is still answering.
    {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(app.dns_tcp).await.unwrap();
        let _ = s.write_all(&[0x00, 0x05, 1, 2, 3, 4, 5]).await;
    }
    let m = ask(&app, NX, Transport::Udp, "allowed.example", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let m = ask(&app, NX, Transport::Tcp, "allowed.example", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!app.logs().contains("panicked"), "{}", app.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn access_events_carry_device_group_type_verdict_and_list() {
    let (_up, app) = start().await;
    ask(
        &app,
        PAGE,
        Transport::Udp,
        "www.adult.example",
        RecordType::AAAA,
    )
    .await;
    ask(&app, PAGE, Transport::Udp, "allowed.example", RecordType::A).await;
    let events = app.events(2, Duration::from_secs(5));
    let blocked: serde_json::Value = serde_json::from_str(
        events
            .iter()
            .find(|e| e.contains("www.adult.example"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(blocked["client"], "127.0.0.3");
    assert_eq!(blocked["device"], "Library-PC-3");
    assert_eq!(blocked["user"], "library");
    assert_eq!(blocked["group"], "page");
    assert_eq!(blocked["qtype"], "AAAA");
    assert_eq!(blocked["outcome"], "blocked");
    assert_eq!(blocked["tier"], "category");
    assert_eq!(blocked["category"], "adult");
    assert_eq!(blocked["list"], "adult");
    assert_eq!(blocked["rule"], "adult.example");
    assert!(blocked["time"].as_str().unwrap().starts_with("20"));
    let allowed: serde_json::Value = serde_json::from_str(
        events
            .iter()
            .find(|e| e.contains("\"allowed.example\""))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(allowed["outcome"], "forwarded");
    assert_eq!(allowed["action"], "allow");
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_follow_the_injected_clock() {
    let up = zone().start().await;
    let upstream = format!("{{ address = \"{}\" }}", up.addr);
    // 24 November 2026 is a Tuesday; London is on GMT, so UTC is local time.
    let after_school = start_with(
        &upstream,
        "",
        &[("HEDGEROW_TEST_NOW", "2026-11-24T16:00:00Z")],
    )
    .await;
    let m = ask(
        &after_school,
        STAFF,
        Transport::Udp,
        "games.example",
        RecordType::A,
    )
    .await;
    assert_eq!(
        a_records(&m),
        [IpAddr::from([192, 0, 2, 67])],
        "games open for staff after school"
    );
    let m = ask(
        &after_school,
        NX,
        Transport::Udp,
        "games.example",
        RecordType::A,
    )
    .await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "pupils have no such schedule"
    );
    drop(after_school);
    let lesson_time = start_with(
        &upstream,
        "",
        &[("HEDGEROW_TEST_NOW", "2026-11-24T10:00:00Z")],
    )
    .await;
    let m = ask(
        &lesson_time,
        STAFF,
        Transport::Udp,
        "games.example",
        RecordType::A,
    )
    .await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "games closed in lesson time"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_refuses_a_flooding_client_only() {
    let up = zone().start().await;
    let cfg = config(&format!("{{ address = \"{}\" }}", up.addr), "")
        .replace("rate_limit_qps = 0", "rate_limit_qps = 5");
    let app = launch(cfg, &[], &[]).await;
    let mut refused = 0;
    for _ in 0..40 {
        let m = ask(&app, NX, Transport::Udp, "allowed.example", RecordType::A).await;
        if m.metadata.response_code == ResponseCode::Refused {
            refused += 1;
        }
    }
    assert!(
        (20..=30).contains(&refused),
        "burst of 10 then refused: {refused}"
    );
    assert!(
        app.wait_for("over its DNS rate limit", Duration::from_secs(2))
            .is_some(),
        "{}",
        app.logs()
    );
    let m = ask(
        &app,
        STAFF,
        Transport::Udp,
        "allowed.example",
        RecordType::A,
    )
    .await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "another client is unaffected"
    );
    // One event a query; each refusal recorded as rate-limited, none as a block.
    let events = tokio::task::block_in_place(|| settled_events(&app, 41));
    assert_eq!(events.len(), 41);
    let limited = events
        .iter()
        .filter(|e| e["verdict"] == "rate-limited")
        .inspect(|e| {
            assert!(
                e["client"] == "127.0.0.1" && e["outcome"] == "rate-limited",
                "{e}"
            )
        })
        .count();
    assert_eq!(limited, refused, "{events:#?}");
    assert!(events.iter().all(|e| e["action"] != "block"), "{events:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_under_load_fails_no_query_and_a_broken_config_is_refused() {
    let (_up, app) = start().await;
    let app = Arc::new(app);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (app, stop, answered) = (app.clone(), stop.clone(), answered.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let (name, want) = if i.is_multiple_of(2) {
                    ("allowed.example", ResponseCode::NoError)
                } else {
                    ("adult.example", ResponseCode::NXDomain)
                };
                let t = if (i + w).is_multiple_of(5) {
                    Transport::Tcp
                } else {
                    Transport::Udp
                };
                let server: SocketAddr = if t == Transport::Udp {
                    app.dns_udp
                } else {
                    app.dns_tcp
                };
                match query_from(IpAddr::from(NX), server, t, name, RecordType::A, Some(1232)).await
                {
                    Some(m) if m.metadata.response_code == want => {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    other => failures.push(format!(
                        "{name} {t:?}: {:?}",
                        other.map(|m| m.metadata.response_code)
                    )),
                }
            }
            failures
        }));
    }
    let reload = |app: &Appliance| {
        Command::new(BIN)
            .args(["reload", "--config", app.config_path().to_str().unwrap()])
            .output()
            .unwrap()
    };
    for round in 0..6 {
        // Each round adds a newly blocked name and reloads through the API (`hedgerow reload`).
        app.write_file("games.txt", &format!("games.example\nnew{round}.example\n"));
        let out = reload(&app);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));
        let m = ask(
            &app,
            NX,
            Transport::Udp,
            &format!("new{round}.example"),
            RecordType::A,
        )
        .await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "round {round}: new entry in force"
        );
        // SIGHUP works too.
        app.sighup();
    }
    // A broken configuration is refused and the running policy stays.
    let good = std::fs::read_to_string(app.config_path()).unwrap();
    app.write_file(
        "hedgerow.toml",
        &good.replace(
            "block_categories = [\"adult\", \"games\"]",
            "block_categories = [\"adult\", \"gmaes\"]",
        ),
    );
    let out = reload(&app);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hedgerow.toml:") && err.contains("gmaes") && err.contains("stays in force"),
        "{err}"
    );
    app.sighup();
    assert!(
        app.wait_for(
            "reload refused, previous policy still in force",
            Duration::from_secs(5)
        )
        .is_some(),
        "{}",
        app.logs()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failures, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        answered.load(Ordering::SeqCst) > 200,
        "load ran: {}",
        answered.load(Ordering::SeqCst)
    );
    let m = ask(&app, NX, Transport::Udp, "new5.example", RecordType::A).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "last good policy still serving"
    );
}

/// What a client is told about a name, as compared between two ways of asking.
fn gist(m: &Message) -> (ResponseCode, Vec<IpAddr>) {
    (m.metadata.response_code, a_records(m))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_from_many_clients_is_answered_once_each_as_if_asked_alone() {
    // The UDP loop reads waiting datagrams many at a time and sends the ready answers many at
    // a time. Sent all at once from twelve sockets on four addresses (three groups and a
    // stranger), 480 queries must each get exactly one answer, at the socket that asked, the
    // same answer as the query asked alone.
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::Name;
    let (_up, app) = start().await;
    let names = [
        "allowed.example",
        "adult.example",
        "notadult.example",
        "games.example",
    ];
    let clients = [NX, NULL, STAFF, STRANGER];
    let mut alone = std::collections::HashMap::new();
    for from in clients {
        for name in names {
            let m = ask(&app, from, Transport::Udp, name, RecordType::A).await;
            alone.insert((from, name), gist(&m));
        }
    }
    let mut sockets = Vec::new();
    for from in clients {
        for _ in 0..3 {
            let sock = tokio::net::UdpSocket::bind(SocketAddr::new(IpAddr::from(from), 0))
                .await
                .unwrap();
            sockets.push((from, sock));
        }
    }
    let mut sent = Vec::new();
    for (s, (_, sock)) in sockets.iter().enumerate() {
        let mut ids = std::collections::HashMap::new();
        for i in 0..40u16 {
            let id = u16::try_from(s).unwrap() * 1000 + i;
            let name = names[usize::from(i) % names.len()];
            let mut m = Message::new(id, MessageType::Query, OpCode::Query);
            m.metadata.recursion_desired = true;
            m.add_query(Query::query(
                Name::from_ascii(format!("{name}.")).unwrap(),
                RecordType::A,
            ));
            sock.send_to(&m.to_vec().unwrap(), app.dns_udp)
                .await
                .unwrap();
            ids.insert(id, name);
        }
        sent.push(ids);
    }
    for ((from, sock), mut ids) in sockets.iter().zip(sent) {
        let mut buf = vec![0u8; 4096];
        while !ids.is_empty() {
            let (n, peer) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("{} answers missing for {from:?}", ids.len()))
                .unwrap();
            assert_eq!(peer, app.dns_udp);
            let m = strict(&buf[..n]);
            let name = ids
                .remove(&m.metadata.id)
                .unwrap_or_else(|| panic!("an answer to {} twice, or not ours", m.metadata.id));
            assert_eq!(gist(&m), alone[&(*from, name)], "{name} from {from:?}");
        }
        // Nothing more arrives: every query was answered once.
        let extra =
            tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await;
        assert!(extra.is_err(), "an extra answer for {from:?}");
    }
    // The groups really differ, so a mixed-up destination would have shown.
    assert_ne!(
        alone[&(NX, "adult.example")],
        alone[&(NULL, "adult.example")]
    );
    assert_eq!(
        alone[&(STRANGER, "allowed.example")].0,
        ResponseCode::Refused
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn listens_on_ipv4_and_ipv6_over_udp_and_tcp() {
    let up = zone().start().await;
    let cfg = config(&format!("{{ address = \"{}\" }}", up.addr), "")
        .replace(
            "listen = [\"127.0.0.1:0\"]",
            "listen = [\"127.0.0.1:0\", \"[::1]:0\"]",
        )
        .replace(
            "networks = [\"127.0.0.1/32\"]",
            "networks = [\"127.0.0.1/32\", \"::1/128\"]",
        );
    let app = launch(cfg, &[], &[]).await;
    let udp6 = app
        .listeners("listening for DNS/UDP on ")
        .into_iter()
        .find(SocketAddr::is_ipv6)
        .expect("an IPv6 UDP listener");
    let tcp6 = app
        .listeners("listening for DNS/TCP on ")
        .into_iter()
        .find(SocketAddr::is_ipv6)
        .expect("an IPv6 TCP listener");
    let v6: IpAddr = Ipv6Addr::LOCALHOST.into();
    for (server, t) in [(udp6, Transport::Udp), (tcp6, Transport::Tcp)] {
        let m = query_from(v6, server, t, "allowed.example", RecordType::A, Some(1232))
            .await
            .expect("answer over IPv6");
        assert_eq!(a_records(&m), [IpAddr::from([192, 0, 2, 1])]);
        let m = query_from(v6, server, t, "adult.example", RecordType::A, Some(1232))
            .await
            .expect("answer over IPv6");
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "the ::1 client is in the nx group"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_over_tls_upstreams_are_used_and_verified() {
    let (up, ca_pem) = zone().start_tls("dot.test").await;
    let tls = format!(
        "{{ address = \"{}\", protocol = \"tls\", tls_name = \"dot.test\", ca_file = \"{{dir}}/ca.pem\" }}",
        up.addr
    );
    let app = launch(config(&tls, ""), &[("ca.pem", ca_pem.as_str())], &[]).await;
    let m = ask(&app, NX, Transport::Udp, "allowed.example", RecordType::A).await;
    assert_eq!(a_records(&m), [IpAddr::from([192, 0, 2, 1])]);
    assert_eq!(up.queries(), 1, "the answer came over TLS");
    drop(app);

    // Twin: a certificate for another name is refused, so the query fails safe with SERVFAIL.
    let wrong = format!(
        "{{ address = \"{}\", protocol = \"tls\", tls_name = \"other.test\", ca_file = \"{{dir}}/ca.pem\" }}",
        up.addr
    );
    let app = launch(config(&wrong, ""), &[("ca.pem", ca_pem.as_str())], &[]).await;
    let m = ask(&app, NX, Transport::Udp, "allowed.example", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(
        up.queries(),
        1,
        "no query was sent over an unverified connection"
    );
}

/// Every access event so far, once `n` have arrived and nothing more came in the next half
/// second (the writer flushes every 50 ms): a duplicate or a second event shows up as extra.
fn settled_events(app: &Appliance, n: usize) -> Vec<serde_json::Value> {
    let first = app.events(n, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let events = app.events(n, Duration::ZERO);
    assert_eq!(
        first.len(),
        events.len(),
        "events still arriving: {events:#?}"
    );
    events
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_query_is_recorded_once_with_what_happened_on_both_paths() {
    let up = zone().servfail("broken.example").start().await;
    let app = start_with(&format!("{{ address = \"{}\" }}", up.addr), "", &[]).await;
    let rcode = |m: Message| m.metadata.response_code;
    // (client, name, transport, answer) for each query; the event must say the same.
    let mut asked: Vec<([u8; 4], &str, ResponseCode, &str)> = Vec::new();
    for t in [Transport::Udp, Transport::Tcp] {
        let exits: [([u8; 4], &str, ResponseCode, &str); 9] = [
            // UDP: fast path, blocked.
            (NX, "adult.example", ResponseCode::NXDomain, "block"),
            // UDP: a miss forwarded by a task, then the same from the cache.
            (NULL, "allowed.example", ResponseCode::NoError, "allow"),
            (NULL, "allowed.example", ResponseCode::NoError, "allow"),
            // The upstream's SERVFAIL passed on is an error, not a block.
            (NX, "broken.example", ResponseCode::ServFail, "error"),
            // The full path: a canary, a SafeSearch rewrite, a CNAME into a blocked name.
            (
                NX,
                "use-application-dns.net",
                ResponseCode::NXDomain,
                "block",
            ),
            (NX, "www.google.com", ResponseCode::NoError, "rewrite"),
            (NX, "redirect.example", ResponseCode::NXDomain, "block"),
            // A client in no network.
            (
                STRANGER,
                "allowed.example",
                ResponseCode::Refused,
                "refused",
            ),
            (OPEN, "adult.example", ResponseCode::NoError, "allow"),
        ];
        for (from, name, want, verdict) in exits {
            let m = ask(&app, from, t, name, RecordType::A).await;
            assert_eq!(rcode(m), want, "{name} from {from:?} over {t:?}");
            asked.push((from, name, want, verdict));
        }
    }
    // Unreadable or unserved queries: FORMERR and NOTIMP, each recorded as an error.
    let wait = Duration::from_millis(500);
    let header_only = [0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    let reply = raw_udp(app.dns_udp, &header_only, wait).await.unwrap();
    assert_eq!(
        rcode(Message::from_vec(&reply).unwrap()),
        ResponseCode::FormErr
    );
    let mut two = Message::query();
    two.metadata.id = 7;
    for n in ["two.example.", "questions.example."] {
        two.add_query(hickory_proto::op::Query::query(
            n.parse().unwrap(),
            RecordType::A,
        ));
    }
    let reply = raw_udp(app.dns_udp, &two.to_vec().unwrap(), wait)
        .await
        .unwrap();
    assert_eq!(
        rcode(Message::from_vec(&reply).unwrap()),
        ResponseCode::FormErr
    );
    let mut notify = Message::new(9, hickory_proto::op::MessageType::Query, {
        hickory_proto::op::OpCode::Notify
    });
    notify.add_query(hickory_proto::op::Query::query(
        "notify.example.".parse().unwrap(),
        RecordType::SOA,
    ));
    let reply = raw_udp(app.dns_udp, &notify.to_vec().unwrap(), wait)
        .await
        .unwrap();
    assert_eq!(
        rcode(Message::from_vec(&reply).unwrap()),
        ResponseCode::NotImp
    );
    // Not queries, not answered, not recorded: shorter than a header, and an answer.
    assert!(raw_udp(app.dns_udp, &[1, 2, 3], wait).await.is_none());
    let mut answer = Message::query();
    answer.metadata.message_type = hickory_proto::op::MessageType::Response;
    answer.add_query(hickory_proto::op::Query::query(
        "reflected.example.".parse().unwrap(),
        RecordType::A,
    ));
    assert!(
        raw_udp(app.dns_udp, &answer.to_vec().unwrap(), wait)
            .await
            .is_none()
    );

    let events = tokio::task::block_in_place(|| settled_events(&app, asked.len() + 3));
    assert_eq!(events.len(), asked.len() + 3, "{events:#?}");
    // Each query is there exactly as often as it was asked, with what happened to it.
    for (from, name, _, verdict) in &asked {
        let client = IpAddr::from(*from).to_string();
        let want = asked
            .iter()
            .filter(|(f, n, _, _)| f == from && n == name)
            .count();
        let got: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| e["client"] == client.as_str() && e["target"] == *name)
            .collect();
        assert_eq!(got.len(), want, "{name} from {client}: {events:#?}");
        assert!(
            got.iter().all(|e| e["verdict"] == *verdict),
            "{name} from {client} should be {verdict}: {got:#?}"
        );
    }
    let invalid: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["outcome"] == "invalid")
        .collect();
    let mut targets: Vec<&str> = invalid
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    targets.sort_unstable();
    assert_eq!(
        targets,
        ["", "notify.example", "two.example"],
        "{invalid:#?}"
    );
    assert!(
        invalid
            .iter()
            .all(|e| e["verdict"] == "error" && e["client"] == "127.0.0.1")
    );
    // A refusal or an error is not the policy blocking anything.
    for e in events.iter().filter(|e| e["verdict"] != "block") {
        assert_ne!(e["action"], "block", "{e}");
    }
}
