//! The evaluation corpus in `../shared/data/eval/all.csv` run through the matcher and policy
//! loaded with every shared category list and allow list. Block rows must be blocked at a high
//! rate; must-allow rows must all be allowed (allow lists win over category entries that are no
//! more specific).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use hedgerow_model::{Host, UrlKey};
use hedgerow_policy::{PolicySnapshot, Target};

#[test]
fn evaluation_corpus_blocks_what_it_should_and_allows_what_it_must() {
    let Some(data) = support::shared_data() else {
        return;
    };
    let (_dir, config, categories) = support::shared_data_config(&data);
    assert!(categories.len() >= 25, "{categories:?}");
    let snap = PolicySnapshot::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let stats = snap.matcher().stats();
    println!(
        "loaded {} domains, {} URLs from {} categories in {} ms ({} bad lines skipped)",
        stats.domains,
        stats.urls,
        categories.len(),
        snap.report().elapsed.as_millis(),
        snap.report().bad_line_count()
    );
    assert!(stats.domains > 500_000);

    let group = snap.group_id("pupils").expect("group");
    let now = jiff::Timestamp::now();
    let csv = std::fs::read_to_string(data.join("eval/all.csv")).expect("read all.csv");
    // category -> (expected, rows, rows that went the expected way)
    let mut tally: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    let mut wrong_allows = Vec::new();
    for line in csv.lines().skip(1) {
        let mut parts = line.splitn(3, ',');
        let (Some(category), Some(expected), Some(target)) =
            (parts.next(), parts.next(), parts.next())
        else {
            panic!("bad row {line:?}");
        };
        let verdict = if target.contains('/') {
            let url = UrlKey::parse(target).unwrap_or_else(|e| panic!("{target}: {e}"));
            snap.decide(group, Target::Url(&url), now)
        } else {
            let host = Host::parse(target).unwrap_or_else(|e| panic!("{target}: {e}"));
            snap.decide(group, Target::Host(&host), now)
        };
        let ok = match expected {
            "block" => verdict.is_blocked(),
            "allow" => !verdict.is_blocked(),
            other => panic!("unknown expectation {other:?}"),
        };
        if expected == "allow" && !ok {
            wrong_allows.push(format!("{category}: {target} -> {verdict}"));
        }
        let t = tally
            .entry((expected.to_owned(), category.to_owned()))
            .or_default();
        t.0 += 1;
        t.1 += usize::from(ok);
    }
    let (mut block_rows, mut block_ok, mut allow_rows, mut allow_ok) = (0, 0, 0, 0);
    println!(
        "{:<8} {:<24} {:>6} {:>8}",
        "expect", "category", "rows", "rate"
    );
    for ((expected, category), (rows, ok)) in &tally {
        println!(
            "{expected:<8} {category:<24} {rows:>6} {:>7.2}%",
            100.0 * *ok as f64 / *rows as f64
        );
        if expected == "block" {
            block_rows += rows;
            block_ok += ok;
        } else {
            allow_rows += rows;
            allow_ok += ok;
        }
    }
    let block_rate = block_ok as f64 / block_rows as f64;
    println!(
        "block rows: {block_ok}/{block_rows} blocked ({:.2}%)",
        100.0 * block_rate
    );
    println!("must-allow rows: {allow_ok}/{allow_rows} allowed");
    assert!(
        wrong_allows.is_empty(),
        "must-allow rows blocked:\n{}",
        wrong_allows.join("\n")
    );
    assert!(block_rate >= 0.99, "block rate {block_rate}");
    for ((expected, category), (rows, ok)) in &tally {
        if expected == "block" {
            assert!(*ok as f64 / *rows as f64 >= 0.95, "{category}: {ok}/{rows}");
        }
    }
}
