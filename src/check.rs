//! `hedgerow check`: runs the effectiveness check (`hedgerow-check`) against the appliance
//! over the wire, and keeps the check log through the admin API (`STATE/api.sock`): run,
//! history, show, actions, review triggers, the scheduled check with its regression alert,
//! and the governors' report. The probing and the report are the check crate's; this is glue.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use hedgerow_check::{CheckRecord, ProbeSet, ReportData};
use serde_json::{Value, json};

use crate::admin::{Answer, Auth, Client};

#[derive(Subcommand)]
pub(crate) enum CheckCommand {
    /// Run the check from every group's address and record it in the check log. Exit 1 if
    /// anything answered otherwise than expected.
    Run(RunArgs),
    /// The scheduled check: runs when the last one is older than --every (a term by
    /// default), records it as scheduled, and alerts the DSL and the technician on the
    /// alert channels to anything that passed last time and fails now.
    Due {
        #[command(flatten)]
        run: RunArgs,
        /// How often: a number and s, m, h or d.
        #[arg(long, default_value = "91d")]
        every: String,
    },
    /// The check log, oldest first.
    History,
    /// One check: its summary and every failure (`--all`: every probe).
    Show {
        id: u64,
        #[arg(long)]
        all: bool,
    },
    /// Record an action taken after a check.
    Action {
        id: u64,
        #[arg(long)]
        text: String,
        /// The change request it raised or refers to.
        #[arg(long)]
        change: Option<u64>,
    },
    /// Record an out-of-cycle review trigger; with --probes, run the check it prompts.
    Trigger {
        /// new-device-type, network-change, new-ai-tool, safeguarding-incident,
        /// major-update or other.
        #[arg(long)]
        kind: String,
        #[arg(long, default_value = "")]
        note: String,
        /// Run the check now, answering the trigger.
        #[arg(long, value_name = "FILE")]
        probes: Option<PathBuf>,
    },
    /// Review triggers and the checks that answered them.
    Triggers,
    /// The governors' report as HTML, and as PDF with --pdf (headless Chromium).
    Report {
        /// The HTML file to write.
        #[arg(long, value_name = "FILE")]
        html: PathBuf,
        #[arg(long, value_name = "FILE")]
        pdf: Option<PathBuf>,
        /// The school's name for the title.
        #[arg(long, default_value = "The school")]
        school: String,
    },
}

#[derive(Args, Clone)]
pub(crate) struct RunArgs {
    /// The probe set: the appliance's addresses, the groups and what the school expects.
    #[arg(long, value_name = "FILE")]
    probes: PathBuf,
    /// Do not record the run in the check log.
    #[arg(long)]
    no_record: bool,
    /// The review trigger this check answers.
    #[arg(long)]
    trigger: Option<u64>,
    /// Raise a change request for each failure that has a clear fix (tightening changes:
    /// block a category, an entry, SafeSearch on), linked from the check's actions.
    #[arg(long)]
    raise_changes: bool,
}

fn answer(a: Answer) -> Result<Value> {
    a.map_err(|(kind, msg)| anyhow!("{msg} ({kind})"))
}

pub(crate) fn check(auth: &Auth, cmd: CheckCommand) -> Result<ExitCode> {
    match cmd {
        CheckCommand::Run(args) => run(auth, &args, false).map(|(code, _)| code),
        CheckCommand::Due { run: args, every } => due(auth, &args, &every),
        CheckCommand::History => history(auth),
        CheckCommand::Show { id, all } => show(auth, id, all),
        CheckCommand::Action { id, text, change } => {
            let mut c = Client::new(auth)?;
            let v = answer(c.send(
                "POST",
                &format!("/api/v1/checks/{id}/actions"),
                Some(json!({ "text": text, "change": change })),
            )?)?;
            print_out(auth, &v, || println!("recorded on check #{id}"));
            Ok(ExitCode::SUCCESS)
        }
        CheckCommand::Trigger { kind, note, probes } => {
            let mut c = Client::new(auth)?;
            let t = answer(c.send(
                "POST",
                "/api/v1/triggers",
                Some(json!({ "kind": kind, "note": note })),
            )?)?;
            let id = t["id"].as_u64().unwrap_or_default();
            if auth.json {
                if probes.is_none() {
                    println!("{t}");
                }
            } else {
                println!("review trigger #{id} recorded ({kind}); a check is due");
            }
            match probes {
                Some(probes) => {
                    let args = RunArgs {
                        probes,
                        no_record: false,
                        trigger: Some(id),
                        raise_changes: false,
                    };
                    run(auth, &args, false).map(|(code, _)| code)
                }
                None => Ok(ExitCode::SUCCESS),
            }
        }
        CheckCommand::Triggers => {
            let mut c = Client::new(auth)?;
            let v = answer(c.send("GET", "/api/v1/triggers", None)?)?;
            print_out(auth, &v, || {
                for t in v.as_array().into_iter().flatten() {
                    println!(
                        "#{} {} {} by {}: {} — {}",
                        t["id"],
                        t["time"].as_str().unwrap_or_default(),
                        t["kind"].as_str().unwrap_or_default(),
                        t["by"].as_str().unwrap_or_default(),
                        t["note"].as_str().unwrap_or_default(),
                        t["check"]
                            .as_u64()
                            .map_or("check due".to_owned(), |c| format!(
                                "answered by check #{c}"
                            ))
                    );
                }
            });
            Ok(ExitCode::SUCCESS)
        }
        CheckCommand::Report { html, pdf, school } => report(auth, &html, pdf.as_deref(), &school),
    }
}

fn print_out(auth: &Auth, v: &Value, text: impl FnOnce()) {
    if auth.json {
        println!("{v}");
    } else {
        text();
    }
}

/// Runs the check; records it unless told not to. The exit code and the record (if any).
fn run(auth: &Auth, args: &RunArgs, scheduled: bool) -> Result<(ExitCode, Option<u64>)> {
    let set = ProbeSet::load(&args.probes)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(hedgerow_check::run(&set))?;
    drop(rt);
    let code = if result.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if args.no_record {
        print_out(auth, &serde_json::to_value(&result)?, || {
            print!("{}", result.text())
        });
        return Ok((code, None));
    }
    let mut c = Client::new(auth)?;
    let rec = answer(c.send(
        "POST",
        "/api/v1/checks",
        Some(json!({ "result": result, "scheduled": scheduled, "trigger": args.trigger })),
    )?)?;
    let id = rec["id"].as_u64().unwrap_or_default();
    let mut raised = Vec::new();
    if args.raise_changes {
        for r in result.remedies() {
            let text = match &r.edit {
                Some(edit) => {
                    let reason = format!(
                        "Effectiveness check #{id}: {} for group {} ({} failure(s), e.g. {} on {}: expected {}, got {})",
                        r.what,
                        r.group,
                        r.failures.len(),
                        r.failures.first().map_or("", |f| f.probe.as_str()),
                        r.failures.first().map_or("", |f| f.via.as_str()),
                        r.failures.first().map_or("", |f| f.expected.as_str()),
                        r.failures.first().map_or("", |f| f.actual.as_str()),
                    );
                    let proposal = json!({
                        "reason": reason,
                        "risk": { "risk": "low", "justification": format!("Restores what the school's probe set expects; found by effectiveness check #{id}.") },
                        "edits": [edit],
                    });
                    match c.send("POST", "/api/v1/changes", Some(proposal))? {
                        Ok(v) => {
                            let cid = v["id"].as_u64();
                            raised.push((r.what.clone(), cid));
                            (
                                format!("change request raised: {} for {}", r.what, r.group),
                                cid,
                            )
                        }
                        Err((_, m)) => (
                            format!(
                                "could not raise a change to {} for {}: {m}",
                                r.what, r.group
                            ),
                            None,
                        ),
                    }
                }
                None => (format!("to do: {} (group {})", r.what, r.group), None),
            };
            answer(c.send(
                "POST",
                &format!("/api/v1/checks/{id}/actions"),
                Some(json!({ "text": text.0, "change": text.1 })),
            )?)?;
        }
    }
    if auth.json {
        println!(
            "{}",
            json!({ "check": id, "result": result, "changes": raised.iter().map(|(w, c)| json!({"what": w, "change": c})).collect::<Vec<_>>() })
        );
    } else {
        print!("{}", result.text());
        println!("\nrecorded as check #{id} (hedgerow check show {id})");
        for (what, cid) in &raised {
            if let Some(cid) = cid {
                println!("raised change request #{cid}: {what}");
            }
        }
    }
    Ok((code, Some(id)))
}

fn every(text: &str) -> Result<jiff::SignedDuration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| anyhow!("--every {t:?}: expected a number and s, m, h or d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--every {t:?}: expected a number and s, m, h or d"),
    };
    Ok(jiff::SignedDuration::from_secs(secs))
}

fn last_check(c: &mut Client) -> Result<Option<CheckRecord>> {
    let list = answer(c.send("GET", "/api/v1/checks", None)?)?;
    let Some(id) = list
        .as_array()
        .and_then(|a| a.last())
        .and_then(|l| l["id"].as_u64())
    else {
        return Ok(None);
    };
    let v = answer(c.send("GET", &format!("/api/v1/checks/{id}"), None)?)?;
    Ok(Some(
        serde_json::from_value(v).context("reading the last check")?,
    ))
}

fn due(auth: &Auth, args: &RunArgs, every_text: &str) -> Result<ExitCode> {
    let every = every(every_text)?;
    let mut c = Client::new(auth)?;
    let previous = last_check(&mut c)?;
    if let Some(p) = &previous {
        let next = p.recorded.checked_add(every)?;
        if next > jiff::Timestamp::now() {
            println!(
                "not due: the last check (#{}) was on {}; the next is due on {next}",
                p.id, p.recorded
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    let (code, id) = run(auth, args, true)?;
    let (Some(prev), Some(id)) = (previous, id) else {
        return Ok(code);
    };
    let v = answer(c.send("GET", &format!("/api/v1/checks/{id}"), None)?)?;
    let now: CheckRecord = serde_json::from_value(v).context("reading the new check")?;
    let cmp = now.result.compare(&prev.result);
    if cmp.regressions.is_empty() {
        println!(
            "no regression against check #{} ({} fixed since)",
            prev.id,
            cmp.fixed.len()
        );
        return Ok(code);
    }
    let lines: Vec<String> = cmp
        .regressions
        .iter()
        .take(50)
        .map(|f| {
            format!(
                "- {} {} {}: {}: expected {}, now {}",
                f.group,
                f.via.as_str(),
                f.section.as_str(),
                f.probe,
                f.expected,
                f.actual
            )
        })
        .collect();
    let message = format!(
        "The scheduled filtering check #{id} found {} problem(s) that the previous check (#{}) did not:\n{}{}\n\nSee `hedgerow check show {id}`; record what is done with `hedgerow check action {id} --text ...`.",
        cmp.regressions.len(),
        prev.id,
        lines.join("\n"),
        if cmp.regressions.len() > 50 {
            "\n- …"
        } else {
            ""
        }
    );
    eprintln!("{message}");
    let config = hedgerow_config::load(&auth.config).map_err(|e| anyhow!("{e}"))?;
    let Some(alerts) = config.alerts else {
        eprintln!("no [alerts] configured: the regression is only in the check log");
        return Ok(ExitCode::FAILURE);
    };
    let alert = hedgerow_alert::Operational {
        severity: hedgerow_model::Severity::High,
        kind: "check-regression".into(),
        message,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let failed = rt.block_on(hedgerow_alert::send_operational(
        &alerts,
        &alert,
        jiff::Timestamp::now(),
    ));
    for (channel, e) in &failed {
        eprintln!("alert not sent on {channel}: {e}");
    }
    answer(c.send(
        "POST",
        &format!("/api/v1/checks/{id}/actions"),
        Some(json!({ "text": format!("regression against check #{}: {} new problem(s); the DSL and the technician were alerted", prev.id, cmp.regressions.len()) })),
    )?)?;
    Ok(ExitCode::FAILURE)
}

fn history(auth: &Auth) -> Result<ExitCode> {
    let mut c = Client::new(auth)?;
    let v = answer(c.send("GET", "/api/v1/checks", None)?)?;
    print_out(auth, &v, || {
        let list = v.as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            println!("no checks recorded yet: hedgerow check run --probes FILE");
        }
        for s in list {
            println!(
                "#{:<4} {}  by {:<12} {:<6} {:>6} probes {:>5} failures {:>6.1} s{}{}{}",
                s["id"],
                s["recorded"].as_str().unwrap_or_default(),
                s["by"].as_str().unwrap_or_default(),
                if s["passed"].as_bool() == Some(true) {
                    "PASSED"
                } else {
                    "FAILED"
                },
                s["probes"],
                s["failures"],
                s["seconds"].as_f64().unwrap_or_default(),
                if s["scheduled"].as_bool() == Some(true) {
                    "  scheduled"
                } else {
                    ""
                },
                s["trigger"]
                    .as_u64()
                    .map(|t| format!("  trigger #{t}"))
                    .unwrap_or_default(),
                match s["actions"].as_u64() {
                    Some(0) | None => String::new(),
                    Some(n) => format!("  {n} action(s)"),
                }
            );
        }
    });
    Ok(ExitCode::SUCCESS)
}

fn show(auth: &Auth, id: u64, all: bool) -> Result<ExitCode> {
    let mut c = Client::new(auth)?;
    let v = answer(c.send("GET", &format!("/api/v1/checks/{id}"), None)?)?;
    if auth.json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let rec: CheckRecord = serde_json::from_value(v).context("reading the check")?;
    println!(
        "check #{} run by {} on {}{}{}",
        rec.id,
        rec.by,
        rec.recorded,
        if rec.scheduled { " (scheduled)" } else { "" },
        rec.trigger
            .map(|t| format!(", answering review trigger #{t}"))
            .unwrap_or_default()
    );
    print!("{}", rec.result.text());
    if all {
        println!("\nevery probe:");
        for r in &rec.result.results {
            println!(
                "  {} {} {} {}: expected {} → {} [{}]",
                r.group,
                r.via.as_str(),
                r.section.as_str(),
                r.probe,
                r.expected,
                r.actual,
                if r.passed { "ok" } else { "FAIL" }
            );
        }
    }
    if !rec.actions.is_empty() {
        println!("\nactions:");
        for a in &rec.actions {
            println!(
                "  {} {}: {}{}",
                a.time,
                a.by,
                a.text,
                a.change
                    .map(|c| format!(" (change request #{c})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(
    auth: &Auth,
    html: &std::path::Path,
    pdf: Option<&std::path::Path>,
    school: &str,
) -> Result<ExitCode> {
    let mut c = Client::new(auth)?;
    let v = answer(c.send("GET", "/api/v1/checks/report", None)?)?;
    let data: ReportData = serde_json::from_value(v).context("reading the report data")?;
    let page = hedgerow_check::report::html(&data, school);
    std::fs::write(html, page).with_context(|| format!("writing {}", html.display()))?;
    println!("wrote {}", html.display());
    if let Some(pdf) = pdf {
        hedgerow_check::report::pdf(html, pdf)?;
        println!("wrote {}", pdf.display());
    }
    Ok(ExitCode::SUCCESS)
}
