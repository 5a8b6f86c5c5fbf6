//! This crate holds test fixtures, used only as a dev-dependency: [`UpstreamDns`], a small
//! scriptable authoritative server that tests start on a loopback port as Hedgerow's upstream;
//! [`query`], a DNS client that sends real UDP and TCP packets and reads every answer with
//! [`strict`] (hickory-proto and dnspython must both accept the whole message); [`Origin`], a
//! web server (HTTP, or HTTPS from a [`TestCa`]; any host or named virtual hosts) that counts
//! every byte it receives, for proxy tests; [`Webhook`], a receiver for alert tests;
//! [`Appliance`], which runs the real `hedgerow` binary on port 0 with a test configuration
//! and waits for it to be ready; [`Dnsmasq`], a real dnsmasq as the school router in front of
//! it; [`Netns`], network namespaces for tests that need separate hosts with their own
//! MACs; Debian's [`ClickHouse`] server and [`Rsyslog`], as the engines a trust ships
//! events to; and [`Browser`], real headless Chromium driven through WebDriver, for the
//! console's tests (screenshots, axe-core accessibility checks, JavaScript off).
//!
//! It never talks to anything but loopback addresses and the namespaces a test made, and it
//! does not depend on any Hedgerow crate: it sees the appliance only from the outside, as a
//! client does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod appliance;
pub mod browser;
mod clickhouse;
mod client;
mod dnsmasq;
mod listorigin;
mod netns;
mod origin;
mod rsyslog;
mod strict;
mod upstream;
mod webhook;

pub use appliance::Appliance;
pub use browser::{Browser, Violation};
pub use clickhouse::{ClickHouse, free_port};
pub use client::{
    Transport, answer_options, client_subnet, query, query_blocking, query_from, query_with,
    query_with_options, raw_udp,
};
pub use dnsmasq::Dnsmasq;
pub use listorigin::{ListOrigin, Reply};
pub use netns::Netns;
pub use origin::{Origin, TestCa};
pub use rsyslog::Rsyslog;
pub use strict::strict;
pub use upstream::{RunningUpstream, UpstreamDns, black_hole};
pub use webhook::Webhook;

/// `../shared/data` beside the repository (or `$HEDGEROW_SHARED_DATA`), or `None` after
/// printing why the caller skips.
pub fn shared_data(repo: &std::path::Path) -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("HEDGEROW_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo.join("../shared/data"));
    if dir.join("categories").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: shared data not found at {} (set HEDGEROW_SHARED_DATA)",
            dir.display()
        );
        None
    }
}
