//! The evaluation corpus in `../shared/data/eval/all.csv` run through the matcher and policy
//! loaded with every shared category list (each as its vocabulary category, see
//! `support::SHARED_CATEGORIES`) and allow list. Block rows must be blocked at a high rate, per
//! shared category and per UKSIC category; must-allow rows must all be allowed (allow lists win
//! over category entries that are no more specific), and the over-block rate is reported per
//! UKSIC category and per allow list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use hedgerow_model::{Category, Host, Uksic, UrlKey, VOCABULARY, category_info};
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
    // UKSIC category (None: the school's own categories) -> must-allow rows it blocked.
    let mut over_blocked: BTreeMap<Option<Uksic>, usize> = BTreeMap::new();
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
            let u = verdict.category.as_ref().and_then(Category::uksic);
            *over_blocked.entry(u).or_default() += 1;
        }
        let t = tally
            .entry((expected.to_owned(), category.to_owned()))
            .or_default();
        t.0 += 1;
        t.1 += usize::from(ok);
    }
    let (mut block_rows, mut block_ok, mut allow_rows, mut allow_ok) = (0, 0, 0, 0);
    println!(
        "{:<8} {:<24} {:<16} {:>6} {:>8}",
        "expect", "shared category", "loaded as", "rows", "rate"
    );
    for ((expected, category), (rows, ok)) in &tally {
        println!(
            "{expected:<8} {category:<24} {:<16} {rows:>6} {:>7.2}%",
            support::vocabulary_category(category).unwrap_or("(allow list)"),
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

    // Per UKSIC category (and the school's own categories): the block rate of the rows whose
    // shared category is loaded as one of its vocabulary categories, and the over-block rate:
    // must-allow and top-site rows blocked with a category that answers for it.
    println!(
        "\n{:<52} {:>6} {:>8} {:>12}",
        "UKSIC category (vocabulary ids)", "rows", "blocked", "over-blocked"
    );
    let mut rows_by: BTreeMap<Option<Uksic>, (usize, usize)> = BTreeMap::new();
    for ((expected, category), (rows, ok)) in &tally {
        if expected != "block" {
            continue;
        }
        let id = support::vocabulary_category(category).unwrap();
        let u = category_info(id).unwrap().uksic;
        let t = rows_by.entry(u).or_default();
        t.0 += rows;
        t.1 += ok;
    }
    let mut without_data = Vec::new();
    let groups: Vec<Option<Uksic>> = Uksic::ALL
        .into_iter()
        .filter(|u| *u != Uksic::IllegalContent)
        .map(Some)
        .chain([None])
        .collect();
    for u in groups {
        let ids: Vec<&str> = VOCABULARY
            .iter()
            .filter(|c| c.uksic == u)
            .map(|c| c.id)
            .collect();
        let label = format!(
            "{} ({})",
            u.map_or("school policy", Uksic::name),
            ids.join(", ")
        );
        let over = over_blocked.get(&u).copied().unwrap_or(0);
        let over_rate = over as f64 / allow_rows as f64;
        match rows_by.get(&u) {
            Some((rows, ok)) => {
                let rate = *ok as f64 / *rows as f64;
                println!(
                    "{label:<52} {rows:>6} {:>7.2}% {:>11.3}%",
                    100.0 * rate,
                    100.0 * over_rate
                );
                assert!(rate >= 0.95, "{label}: {ok}/{rows} blocked");
            }
            None => {
                println!(
                    "{label:<52} {:>6} {:>8} {:>11.3}%",
                    0,
                    "no data",
                    100.0 * over_rate
                );
                if let Some(u) = u {
                    without_data.push(u);
                }
            }
        }
        // The must-allow rows are the over-blocking check: none may be blocked.
        assert_eq!(over, 0, "{label}: {over} must-allow rows blocked");
    }
    println!("UKSIC categories the shared data has no list for: {without_data:?}");
    // The shared data covers these; the others need a provider's lists (docs/categories.md).
    for u in [
        Uksic::Pornography,
        Uksic::Gambling,
        Uksic::DrugsSubstanceAbuse,
        Uksic::HateSpeech,
        Uksic::MalwareHacking,
        Uksic::PiracyCopyrightTheft,
        Uksic::Violence,
    ] {
        assert!(rows_by.contains_key(&Some(u)), "{u:?} has no corpus rows");
    }

    // Over-blocking per allow list: the share of its rows blocked.
    println!(
        "\n{:<24} {:>6} {:>12}",
        "allow list", "rows", "over-blocked"
    );
    for ((expected, category), (rows, ok)) in &tally {
        if expected == "allow" {
            println!(
                "{category:<24} {rows:>6} {:>11.3}%",
                100.0 * (rows - ok) as f64 / *rows as f64
            );
        }
    }
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
