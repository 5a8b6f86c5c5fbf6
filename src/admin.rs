//! The client of the running appliance's API on `STATE/api.sock`, and `hedgerow user`,
//! `change` and `audit`. Every command that reaches a running appliance (these, and `reload`,
//! `logs`, `breaches`, `reviews`, `export`) authenticates with `--token-file`,
//! `HEDGEROW_TOKEN`, or a password for `--user` (prompted on a terminal, else the first line
//! of standard input). `audit verify` and `audit list` open the store themselves when the
//! appliance is stopped.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use hedgerow_admin::report;
use serde_json::{Value, json};

pub(crate) const API_SOCKET: &str = "api.sock";

/// How the CLI signs in to the running appliance.
#[derive(Args, Clone, Default)]
pub(crate) struct Creds {
    /// Read an API token from this file (else `HEDGEROW_TOKEN`, else `--user`).
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) token_file: Option<PathBuf>,
    /// Sign in as this account with its password (prompted, or read from standard input).
    #[arg(
        long = "user",
        visible_alias = "as",
        value_name = "NAME",
        global = true
    )]
    pub(crate) account: Option<String>,
    /// With `--user`: also ask for the account's authenticator (TOTP) code, after the
    /// password (needed once the account has enrolled one).
    #[arg(long, global = true)]
    pub(crate) totp: bool,
}

impl Creds {
    /// Whether any way of signing in was given.
    pub(crate) fn given(&self) -> bool {
        self.token_file.is_some()
            || std::env::var_os("HEDGEROW_TOKEN").is_some()
            || self.account.is_some()
    }
}

/// The configuration, the sign-in and the output of `user`, `change` and `audit`.
#[derive(Args, Clone)]
pub(crate) struct Auth {
    /// The appliance's configuration (to find its state directory).
    #[arg(
        long,
        value_name = "PATH",
        global = true,
        default_value = "/etc/hedgerow/hedgerow.toml"
    )]
    pub(crate) config: PathBuf,
    #[command(flatten)]
    creds: Creds,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Add an account. The first account needs no sign-in and must hold the approver role.
    Add {
        name: String,
        /// Comma-separated: technician, dsl, deputy-dsl, approver, governor, staff.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// Add it without a password (it signs in with API tokens only).
        #[arg(long)]
        no_password: bool,
    },
    /// Set an account's password (your own, or anyone's as an approver).
    Passwd { name: String },
    /// Set an account's roles.
    Roles {
        name: String,
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
    },
    /// Disable an account (its tokens and sessions stop working).
    Disable { name: String },
    /// List accounts.
    List,
    /// Issue an API token for scripts (printed once; stored hashed).
    Token { name: String },
    /// Remove an account's TOTP authenticator (a lost phone; approvers only): its sessions
    /// end, and the web console asks it to enrol a new one at the next sign-in.
    TotpReset { name: String },
}

#[derive(Subcommand)]
pub(crate) enum ChangeCommand {
    /// Propose a change with its risk assessment; prints the preview.
    Propose(Box<ProposeArgs>),
    /// List change requests.
    List,
    /// Show one change request with its preview.
    Show { id: u64 },
    /// Approve (or co-sign as the DSL) someone else's change; acknowledge a hand edit.
    Approve {
        id: u64,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Reject a change.
    Reject {
        id: u64,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Apply an approved change, or a tightening one.
    Apply { id: u64 },
    /// Undo an applied change (a new change); `--whole` restores every file as it was before it.
    Revert {
        id: u64,
        #[arg(long)]
        whole: bool,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Applied changes, newest last, with the files' content hashes.
    History,
}

#[derive(Args)]
pub(crate) struct ProposeArgs {
    /// Why the change is needed.
    #[arg(long)]
    reason: String,
    /// Safeguarding risk: low, medium or high.
    #[arg(long)]
    risk: String,
    /// Why the risk is rated so.
    #[arg(long)]
    justification: String,
    #[arg(long, default_value = "")]
    benefit: String,
    #[arg(long, default_value = "")]
    mitigations: String,
    /// A time-limited exception: when it reverts itself (RFC 3339, or a duration such as 2h).
    #[arg(long)]
    expires: Option<String>,
    /// GROUP:ENTRY to allow.
    #[arg(long, value_name = "GROUP:ENTRY")]
    allow: Vec<String>,
    /// GROUP:ENTRY to take off the group's allow entries.
    #[arg(long, value_name = "GROUP:ENTRY")]
    remove_allow: Vec<String>,
    /// GROUP:ENTRY to block.
    #[arg(long, value_name = "GROUP:ENTRY")]
    block: Vec<String>,
    /// GROUP:ENTRY to take off the group's block entries.
    #[arg(long, value_name = "GROUP:ENTRY")]
    remove_block: Vec<String>,
    #[arg(long, value_name = "GROUP:CATEGORY")]
    block_category: Vec<String>,
    #[arg(long, value_name = "GROUP:CATEGORY")]
    unblock_category: Vec<String>,
    /// GROUP:on|off
    #[arg(long, value_name = "GROUP:MODE")]
    safesearch: Vec<String>,
    /// GROUP:strict|moderate|off
    #[arg(long, value_name = "GROUP:MODE")]
    youtube: Vec<String>,
    /// A list to remove.
    #[arg(long, value_name = "LIST")]
    remove_list: Vec<String>,
    /// A host whose HTTPS the proxy never decrypts (`[proxy] never_intercept`).
    #[arg(long, value_name = "HOST")]
    never_intercept: Vec<String>,
    #[arg(long, value_name = "HOST")]
    remove_never_intercept: Vec<String>,
    /// A group whose HTTPS the proxy decrypts (`[proxy] intercept_groups`).
    #[arg(long, value_name = "GROUP")]
    intercept_group: Vec<String>,
    #[arg(long, value_name = "GROUP")]
    remove_intercept_group: Vec<String>,
    /// A `[[devices]]` entry to remove, by name.
    #[arg(long, value_name = "NAME")]
    remove_device: Vec<String>,
    /// A `[[breaches.rules]]` rule to remove, by name.
    #[arg(long, value_name = "NAME")]
    remove_breach_rule: Vec<String>,
    /// A schedule window to remove: GROUP:NAME.
    #[arg(long, value_name = "GROUP:NAME")]
    remove_schedule: Vec<String>,
    /// Any edit as the API's JSON, e.g. `{"op":"add-device","device":{"name":"lab-1",
    /// "ip":"10.0.0.7","group":"staff"}}`, `{"op":"add-breach-rule","rule":{…}}`,
    /// `{"op":"add-schedule","group":"ks2","schedule":{…}}` (see `/api/v1/openapi.json`).
    #[arg(long, value_name = "JSON")]
    edit: Vec<String>,
    /// A host or URL whose verdicts the preview shows.
    #[arg(long, value_name = "TARGET")]
    check: Vec<String>,
}

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// The audit log, oldest first.
    List,
    /// Check the audit log's hash chain; exit 1 if it is broken.
    Verify,
}

/// The API's answer: a value, or its error kind and message.
pub(crate) type Answer = std::result::Result<Value, (String, String)>;

fn state_dir(config: &Path) -> Result<PathBuf> {
    let c = hedgerow_config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(c.server.state_dir)
}

/// One request to the API over its Unix socket.
pub(crate) fn call(
    sock: &Path,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Answer> {
    use http_body_util::{BodyExt, Full};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(sock)
            .await
            .with_context(|| {
                format!("connecting to the running appliance at {}", sock.display())
            })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "hedgerow")
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let resp = sender
            .send_request(req.body(Full::new(bytes::Bytes::from(body)))?)
            .await?;
        let ok = resp.status().is_success();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if ok {
            Ok(Ok(v))
        } else {
            let kind = v["error"]["kind"].as_str().unwrap_or("error").to_owned();
            let msg = v["error"]["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            Ok(Err((kind, msg)))
        }
    })
}

/// One request to the API whose answer is JSON lines (or an export), handing each line to
/// `each` as it arrives. An error status is the API's error message; an answer cut short is
/// an error.
pub(crate) fn stream(
    sock: &Path,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
    each: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    use http_body_util::{BodyExt, Full};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(sock)
            .await
            .with_context(|| {
                format!("connecting to the running appliance at {}", sock.display())
            })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "hedgerow")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"));
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let resp = sender
            .send_request(req.body(Full::new(bytes::Bytes::from(body)))?)
            .await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = body.collect().await?.to_bytes();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let msg = v["error"]["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            bail!("{msg}");
        }
        let mut held: Vec<u8> = Vec::with_capacity(64 << 10);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                anyhow::anyhow!("the appliance's answer was cut short (did it stop?): {e}")
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            held.extend_from_slice(&data);
            let mut start = 0;
            while let Some(nl) = held[start..].iter().position(|b| *b == b'\n') {
                each(&held[start..start + nl])?;
                start += nl + 1;
            }
            held.drain(..start);
        }
        if !held.is_empty() {
            each(&held)?;
        }
        Ok(())
    })
}

fn read_secret(prompt: &str) -> Result<String> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        Ok(rpassword::prompt_password(prompt)?)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

/// A signed-in client of the API on one appliance's socket.
pub(crate) struct Client {
    pub(crate) sock: PathBuf,
    creds: Creds,
    token: Option<String>,
}

impl Client {
    pub(crate) fn new(auth: &Auth) -> Result<Self> {
        let sock = state_dir(&auth.config)?.join(API_SOCKET);
        Ok(Self::at(sock, &auth.creds))
    }

    /// A client of the API socket `sock`, signing in with `creds`.
    pub(crate) fn at(sock: PathBuf, creds: &Creds) -> Self {
        Self {
            sock,
            creds: creds.clone(),
            token: None,
        }
    }

    /// The bearer token: from the file, the environment, or a password sign-in.
    pub(crate) fn token(&mut self) -> Result<String> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let t = if let Some(f) = &self.creds.token_file {
            std::fs::read_to_string(f)
                .with_context(|| format!("reading {}", f.display()))?
                .trim()
                .to_owned()
        } else if let Ok(t) = std::env::var("HEDGEROW_TOKEN") {
            t.trim().to_owned()
        } else if let Some(user) = self.creds.account.clone() {
            let password = read_secret(&format!("password for {user}: "))?;
            let code = if self.creds.totp {
                Some(read_secret(&format!("authenticator code for {user}: "))?)
            } else {
                None
            };
            match call(
                &self.sock,
                "POST",
                "/api/v1/login",
                None,
                Some(json!({ "name": user, "password": password, "code": code })),
            )? {
                Ok(v) => v["token"].as_str().unwrap_or_default().to_owned(),
                Err((_, m)) => bail!("{m}"),
            }
        } else {
            bail!(
                "sign in to the running appliance: --user NAME (password), --token-file FILE or HEDGEROW_TOKEN"
            );
        };
        self.token = Some(t.clone());
        Ok(t)
    }

    pub(crate) fn send(&mut self, method: &str, path: &str, body: Option<Value>) -> Result<Answer> {
        let token = self.token()?;
        call(&self.sock, method, path, Some(&token), body)
    }

    /// A request whose answer streams as lines (see [`stream`]).
    pub(crate) fn stream(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let token = self.token()?;
        stream(&self.sock, method, path, &token, body, each)
    }
}

/// Prints an answer; an error goes to stderr with exit 1.
fn finish(answer: Answer, json_out: bool, text: impl FnOnce(&Value)) -> Result<ExitCode> {
    match answer {
        Ok(v) => {
            if json_out {
                println!("{v}");
            } else {
                text(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err((kind, msg)) => {
            if json_out {
                println!("{}", json!({ "error": { "kind": kind, "message": msg } }));
            }
            eprintln!("hedgerow: {msg}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn roles_json(roles: &[String]) -> Value {
    json!(roles.iter().map(|r| r.trim()).collect::<Vec<_>>())
}

pub(crate) fn user(auth: &Auth, cmd: UserCommand) -> Result<ExitCode> {
    let mut c = Client::new(auth)?;
    let show = |v: &Value| {
        typed(v, |a: &hedgerow_admin::Account| {
            println!("{}", report::account_line(a))
        })
    };
    let answer = match cmd {
        UserCommand::Add {
            name,
            roles,
            no_password,
        } => {
            // The first account is added without signing in (when there is no way to).
            let has_auth = auth.creds.given();
            let token = if has_auth { Some(c.token()?) } else { None };
            let password = if no_password {
                None
            } else {
                Some(read_secret(&format!("new password for {name}: "))?)
            };
            call(
                &c.sock,
                "POST",
                "/api/v1/users",
                token.as_deref(),
                Some(json!({ "name": name, "roles": roles_json(&roles), "password": password })),
            )?
        }
        UserCommand::Passwd { name } => {
            let token = c.token()?;
            let password = read_secret(&format!("new password for {name}: "))?;
            call(
                &c.sock,
                "PUT",
                &format!("/api/v1/users/{name}/password"),
                Some(&token),
                Some(json!({ "password": password })),
            )?
        }
        UserCommand::Roles { name, roles } => c.send(
            "PUT",
            &format!("/api/v1/users/{name}/roles"),
            Some(json!({ "roles": roles_json(&roles) })),
        )?,
        UserCommand::Disable { name } => {
            c.send("POST", &format!("/api/v1/users/{name}/disable"), None)?
        }
        UserCommand::TotpReset { name } => {
            c.send("POST", &format!("/api/v1/users/{name}/totp/reset"), None)?
        }
        UserCommand::Token { name } => {
            let a = c.send("POST", &format!("/api/v1/users/{name}/tokens"), None)?;
            return finish(a, auth.json, |v| {
                println!("{}", v["token"].as_str().unwrap_or(""))
            });
        }
        UserCommand::List => {
            let a = c.send("GET", "/api/v1/users", None)?;
            return finish(a, auth.json, |v| {
                for u in v.as_array().into_iter().flatten() {
                    show(u);
                }
            });
        }
    };
    finish(answer, auth.json, show)
}

fn split(s: &str) -> Result<(String, String)> {
    match s.split_once(':') {
        Some((g, e)) if !g.is_empty() && !e.is_empty() => Ok((g.to_owned(), e.to_owned())),
        _ => bail!("{s:?}: expected GROUP:VALUE"),
    }
}

fn expires(text: &str) -> Result<String> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t.to_string());
    }
    let d = hedgerow_config::parse_duration(text)
        .map_err(|e| anyhow::anyhow!("--expires {text:?}: not a time or duration: {e}"))?;
    let d = jiff::SignedDuration::try_from(d)?;
    Ok((jiff::Timestamp::now() + d).to_string())
}

fn proposal(a: &ProposeArgs) -> Result<Value> {
    let mut edits = Vec::new();
    let pairs = [
        ("add-allow", &a.allow, "entry"),
        ("remove-allow", &a.remove_allow, "entry"),
        ("add-block", &a.block, "entry"),
        ("remove-block", &a.remove_block, "entry"),
        ("block-category", &a.block_category, "category"),
        ("unblock-category", &a.unblock_category, "category"),
        ("safe-search", &a.safesearch, "mode"),
        ("youtube", &a.youtube, "mode"),
    ];
    for (op, values, key) in pairs {
        for v in values {
            let (g, x) = split(v)?;
            let mut e = serde_json::Map::new();
            e.insert("op".into(), json!(op));
            e.insert("group".into(), json!(g));
            e.insert(key.into(), json!(x));
            edits.push(Value::Object(e));
        }
    }
    for l in &a.remove_list {
        edits.push(json!({ "op": "remove-list", "list": l }));
    }
    let singles = [
        ("add-never-intercept", &a.never_intercept, "host"),
        ("remove-never-intercept", &a.remove_never_intercept, "host"),
        ("add-intercept-group", &a.intercept_group, "group"),
        ("remove-intercept-group", &a.remove_intercept_group, "group"),
        ("remove-device", &a.remove_device, "name"),
        ("remove-breach-rule", &a.remove_breach_rule, "name"),
    ];
    for (op, values, key) in singles {
        for v in values {
            let mut e = serde_json::Map::new();
            e.insert("op".into(), json!(op));
            e.insert(key.into(), json!(v));
            edits.push(Value::Object(e));
        }
    }
    for v in &a.remove_schedule {
        let (g, name) = split(v)?;
        edits.push(json!({ "op": "remove-schedule", "group": g, "name": name }));
    }
    for text in &a.edit {
        let v: Value = serde_json::from_str(text)
            .with_context(|| format!("--edit {text:?}: not a JSON edit"))?;
        if !v.get("op").is_some_and(Value::is_string) {
            bail!("--edit {text:?}: a JSON object with an \"op\" is expected");
        }
        edits.push(v);
    }
    Ok(json!({
        "reason": a.reason,
        "risk": {
            "risk": a.risk,
            "justification": a.justification,
            "benefit": a.benefit,
            "mitigations": a.mitigations,
            "expires": a.expires.as_deref().map(expires).transpose()?,
        },
        "edits": edits,
        "check": a.check,
    }))
}

/// Shows a value of the API as `T` with `show`, or as JSON if it is not one (an answer from
/// a newer appliance).
fn typed<T: serde::de::DeserializeOwned>(v: &Value, show: impl FnOnce(&T)) {
    match serde_json::from_value::<T>(v.clone()) {
        Ok(t) => show(&t),
        Err(_) => println!("{v}"),
    }
}

fn print_change(v: &Value) {
    typed(v, |c: &hedgerow_admin::ChangeRequest| {
        let _ = report::write_change(&mut std::io::stdout().lock(), c);
    });
}

pub(crate) fn change(auth: &Auth, cmd: ChangeCommand) -> Result<ExitCode> {
    let mut c = Client::new(auth)?;
    let note = |n: String| Some(json!({ "note": n }));
    let answer = match cmd {
        ChangeCommand::Propose(a) => c.send("POST", "/api/v1/changes", Some(proposal(&a)?))?,
        ChangeCommand::Show { id } => c.send("GET", &format!("/api/v1/changes/{id}"), None)?,
        ChangeCommand::Approve { id, note: n } => {
            c.send("POST", &format!("/api/v1/changes/{id}/approve"), note(n))?
        }
        ChangeCommand::Reject { id, note: n } => {
            c.send("POST", &format!("/api/v1/changes/{id}/reject"), note(n))?
        }
        ChangeCommand::Apply { id } => {
            c.send("POST", &format!("/api/v1/changes/{id}/apply"), None)?
        }
        ChangeCommand::Revert { id, whole, reason } => c.send(
            "POST",
            &format!("/api/v1/changes/{id}/revert"),
            Some(json!({ "whole": whole, "reason": reason })),
        )?,
        ChangeCommand::List | ChangeCommand::History => {
            let history = matches!(cmd, ChangeCommand::History);
            let a = c.send("GET", "/api/v1/changes", None)?;
            let a = a.map(|v| {
                if history {
                    Value::Array(
                        v.as_array()
                            .into_iter()
                            .flatten()
                            .filter(|c| c["applied_at"].is_string())
                            .cloned()
                            .collect(),
                    )
                } else {
                    v
                }
            });
            return finish(a, auth.json, |v| {
                for ch in v.as_array().into_iter().flatten() {
                    typed(ch, |c: &hedgerow_admin::ChangeRequest| {
                        println!("{}", report::change_line(c))
                    });
                }
            });
        }
    };
    finish(answer, auth.json, print_change)
}

pub(crate) fn audit(auth: &Auth, cmd: AuditCommand) -> Result<ExitCode> {
    let config = hedgerow_config::load(&auth.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sock = config.server.state_dir.join(API_SOCKET);
    let running = std::os::unix::net::UnixStream::connect(&sock).is_ok();
    let answer: Answer = if running {
        let mut c = Client::new(auth)?;
        match cmd {
            AuditCommand::List => c.send("GET", "/api/v1/audit", None)?,
            AuditCommand::Verify => c.send("GET", "/api/v1/audit/verify", None)?,
        }
    } else {
        // Stopped: whoever can read the state directory can read the store.
        let store = crate::logs::open_store(&config)?;
        match cmd {
            AuditCommand::List => Ok(serde_json::to_value(store.audit()?)?),
            AuditCommand::Verify => {
                let c = store.verify_audit()?;
                Ok(
                    json!({ "ok": c.ok(), "entries": c.entries, "chained": c.chained,
                    "unchained": c.unchained, "problems": c.problems }),
                )
            }
        }
    };
    let verify = matches!(cmd, AuditCommand::Verify);
    if verify && let Ok(v) = &answer {
        let ok = v["ok"].as_bool() == Some(true);
        if auth.json {
            println!("{v}");
        } else {
            for p in v["problems"].as_array().into_iter().flatten() {
                println!("BROKEN: {}", p.as_str().unwrap_or(""));
            }
            println!(
                "audit log: {} entries ({} chained, {} from before the chain): {}",
                v["entries"],
                v["chained"],
                v["unchained"],
                if ok { "chain intact" } else { "CHAIN BROKEN" }
            );
        }
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    finish(answer, auth.json, |v| {
        for e in v.as_array().into_iter().flatten() {
            typed(e, |e: &hedgerow_store::AuditEntry| {
                println!("{}", report::audit_line(e))
            });
        }
    })
}
