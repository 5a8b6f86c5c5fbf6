//! [`Admin`]: every operation on accounts and change requests, authorised, recorded in the
//! audit log. The API and the CLI's offline paths call these and nothing else.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hedgerow_config::{Config, ListFormat, ListKind};
use hedgerow_model::{Clock, Host, Tier, UrlKey};
use hedgerow_policy::{PolicySnapshot, Target};
use hedgerow_store::{AdminTree, AuditCheck, AuditEntry, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::AdminError;
use crate::accounts::{self, Account, Permission, Role, StoredAccount, hash_password, new_token};
use crate::change::{
    ChangeRequest, FileHashes, Origin, Preview, Proposal, Risk, Signature, Status, VerdictChange,
};
use crate::edit::{Direction, Edit, Files};

/// Asks the running appliance to reload its configuration: `Ok` with a report, or `Err` with
/// why it refused (the old policy still serving).
pub type Reloader = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Told of every unreviewed change (hand edit) as it is recorded, to raise it to the approvers
/// and the DSL (the binary sends it on the alert channels).
pub type Notifier = Arc<dyn Fn(&ChangeRequest) + Send + Sync>;

/// The appliance's own name in the audit log, for what it does by itself (expiry, hand edits).
pub const APPLIANCE: &str = "hedgerow";

/// Whether `edits` loosen the filter (any one of them does) or only tighten it.
fn direction_of(config: &Config, edits: &[Edit]) -> Direction {
    if edits
        .iter()
        .any(|e| e.direction(config) == Direction::Loosening)
    {
        Direction::Loosening
    } else {
        Direction::Tightening
    }
}

/// What a proposal would do, computed without recording it ([`Admin::preview_proposal`]).
#[derive(Debug, Clone, Serialize)]
pub struct ProposalPreview {
    pub direction: Direction,
    /// The roles whose signatures it would need.
    pub needs: Vec<Role>,
    pub preview: Preview,
}

/// The change-control service.
pub struct Admin {
    store: Arc<Store>,
    config: PathBuf,
    reload: Reloader,
    clock: Arc<dyn Clock>,
    /// Sessions, failed sign-ins and lockouts, TOTP enrolments under way (`signin.rs`).
    pub(crate) signin: crate::signin::SignInState,
    /// Serialises every read-modify-write of accounts and changes, and every application.
    work: Mutex<()>,
    notify: Option<Notifier>,
    /// The running appliance's own status report (the system status page).
    pub(crate) status: Option<crate::status::StatusSource>,
}

const V1: u8 = 1;

pub(crate) fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, AdminError> {
    let mut out = vec![V1];
    serde_json::to_writer(&mut out, v).map_err(|e| AdminError::Internal(e.to_string()))?;
    Ok(out)
}

pub(crate) fn dec<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    match bytes.split_first() {
        Some((&V1, rest)) => {
            serde_json::from_slice(rest).map_err(|e| AdminError::Internal(e.to_string()))
        }
        _ => Err(AdminError::Internal(
            "an admin record has a format this build does not read".into(),
        )),
    }
}

fn sha(text: &str) -> String {
    accounts::hex(&Sha256::digest(text.as_bytes()))
}

fn json(v: serde_json::Value) -> String {
    v.to_string()
}

impl Admin {
    pub fn new(store: Arc<Store>, config: &Path, reload: Reloader, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            config: config.to_owned(),
            reload,
            clock,
            signin: crate::signin::SignInState::default(),
            work: Mutex::new(()),
            notify: None,
            status: None,
        }
    }

    /// Calls `notify` with every unreviewed change found from now on.
    pub fn with_notifier(mut self, notify: Notifier) -> Self {
        self.notify = Some(notify);
        self
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The configuration file change control edits.
    pub(crate) fn config_path(&self) -> &Path {
        &self.config
    }

    pub(crate) fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    /// The time by change control's clock (pinned in end-to-end tests).
    pub fn clock_now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.work.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn audit(
        &self,
        actor: &str,
        action: &str,
        detail: String,
    ) -> Result<AuditEntry, AdminError> {
        Ok(self
            .store
            .append_audit(self.now(), actor, action, &detail)?)
    }

    // ---- accounts ----

    pub(crate) fn stored(&self, name: &str) -> Result<Option<StoredAccount>, AdminError> {
        self.store
            .admin_get(AdminTree::Accounts, name.as_bytes())?
            .map(|v| dec(&v))
            .transpose()
    }

    pub(crate) fn put_account(&self, a: &StoredAccount) -> Result<(), AdminError> {
        Ok(self
            .store
            .admin_put(AdminTree::Accounts, a.name.as_bytes(), &enc(a)?)?)
    }

    pub(crate) fn all_accounts(&self) -> Result<Vec<StoredAccount>, AdminError> {
        self.store
            .admin_list(AdminTree::Accounts)?
            .iter()
            .map(|(_, v)| dec(v))
            .collect()
    }

    /// Whether no account exists yet (the first may be created without signing in, over the
    /// appliance's own Unix socket, and must hold the approver role).
    pub fn needs_bootstrap(&self) -> Result<bool, AdminError> {
        Ok(self.store.admin_list(AdminTree::Accounts)?.is_empty())
    }

    pub fn add_account(
        &self,
        actor: Option<&Account>,
        name: &str,
        roles: BTreeSet<Role>,
        password: Option<&str>,
    ) -> Result<Account, AdminError> {
        let _w = self.lock();
        accounts::valid_name(name)?;
        let by = match actor {
            Some(a) => {
                a.authorize(Permission::ManageAccounts)?;
                a.name.clone()
            }
            None if self.needs_bootstrap()? => {
                if !roles.contains(&Role::Approver) {
                    return Err(AdminError::Invalid(
                        "the first account must hold the approver role, to add the others".into(),
                    ));
                }
                APPLIANCE.to_owned()
            }
            None => {
                return Err(AdminError::Unauthenticated(
                    "sign in to add an account".into(),
                ));
            }
        };
        if roles.is_empty() {
            return Err(AdminError::Invalid(
                "an account needs at least one role".into(),
            ));
        }
        if self.stored(name)?.is_some() {
            return Err(AdminError::Conflict(format!("account {name:?} exists")));
        }
        let a = StoredAccount {
            name: name.to_owned(),
            roles,
            password: password.map(hash_password).transpose()?,
            tokens: Vec::new(),
            disabled: false,
            created: self.now(),
            totp: None,
        };
        self.put_account(&a)?;
        let roles: Vec<&str> = a.roles.iter().map(|r| r.as_str()).collect();
        self.audit(
            &by,
            "account-add",
            json(serde_json::json!({ "account": name, "roles": roles })),
        )?;
        Ok(a.view())
    }

    fn edit_account(
        &self,
        actor: &Account,
        name: &str,
        self_allowed: bool,
        action: &str,
        detail: serde_json::Value,
        f: impl FnOnce(&mut StoredAccount) -> Result<(), AdminError>,
    ) -> Result<Account, AdminError> {
        let _w = self.lock();
        if !(self_allowed && actor.name == name) {
            actor.authorize(Permission::ManageAccounts)?;
        }
        let mut a = self
            .stored(name)?
            .ok_or_else(|| AdminError::NotFound(format!("no account {name:?}")))?;
        f(&mut a)?;
        self.put_account(&a)?;
        self.audit(&actor.name, action, json(detail))?;
        Ok(a.view())
    }

    pub fn set_password(
        &self,
        actor: &Account,
        name: &str,
        password: &str,
    ) -> Result<Account, AdminError> {
        let hash = hash_password(password)?;
        let a = self.edit_account(
            actor,
            name,
            true,
            "account-password",
            serde_json::json!({ "account": name }),
            |a| {
                a.password = Some(hash);
                Ok(())
            },
        )?;
        // Someone else's password was reset (perhaps it leaked): their sessions end.
        if actor.name != name {
            self.signin.end_sessions(name);
        }
        Ok(a)
    }

    pub fn set_roles(
        &self,
        actor: &Account,
        name: &str,
        roles: BTreeSet<Role>,
    ) -> Result<Account, AdminError> {
        if roles.is_empty() {
            return Err(AdminError::Invalid(
                "an account needs at least one role".into(),
            ));
        }
        if actor.name == name
            && let Some(r) = roles.iter().find(|r| !actor.roles.contains(r))
        {
            return Err(AdminError::Forbidden(format!(
                "an account cannot give itself a role ({}): another approver must",
                r.as_str()
            )));
        }
        let list: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        let a = self.edit_account(
            actor,
            name,
            false,
            "account-roles",
            serde_json::json!({ "account": name, "roles": list }),
            |a| {
                a.roles = roles;
                Ok(())
            },
        )?;
        // New roles are taken up at the next sign-in, where an authenticator is asked for if
        // they need one.
        self.signin.end_sessions(name);
        Ok(a)
    }

    pub fn disable(&self, actor: &Account, name: &str) -> Result<Account, AdminError> {
        if actor.name == name {
            return Err(AdminError::Conflict(
                "an account cannot disable itself".into(),
            ));
        }
        self.edit_account(
            actor,
            name,
            false,
            "account-disable",
            serde_json::json!({ "account": name }),
            |a| {
                a.disabled = true;
                a.tokens.clear();
                Ok(())
            },
        )?;
        self.signin.end_sessions(name);
        self.account(name)
    }

    /// A new API token for scripts; shown once, stored hashed.
    pub fn new_api_token(&self, actor: &Account, name: &str) -> Result<String, AdminError> {
        let (token, hash) = new_token();
        self.edit_account(
            actor,
            name,
            true,
            "account-token",
            serde_json::json!({ "account": name }),
            |a| {
                a.tokens.push(hash);
                Ok(())
            },
        )?;
        Ok(token)
    }

    pub fn accounts(&self, actor: &Account) -> Result<Vec<Account>, AdminError> {
        actor.authorize(Permission::Read)?;
        Ok(self
            .all_accounts()?
            .iter()
            .map(StoredAccount::view)
            .collect())
    }

    fn account(&self, name: &str) -> Result<Account, AdminError> {
        self.stored(name)?
            .map(|a| a.view())
            .ok_or_else(|| AdminError::NotFound(format!("no account {name:?}")))
    }

    // ---- change requests ----

    fn get_change(&self, id: u64) -> Result<ChangeRequest, AdminError> {
        self.store
            .admin_get(AdminTree::Changes, &id.to_be_bytes())?
            .map(|v| dec(&v))
            .transpose()?
            .ok_or_else(|| AdminError::NotFound(format!("no change #{id}")))
    }

    fn put_change(&self, c: &ChangeRequest) -> Result<(), AdminError> {
        Ok(self
            .store
            .admin_put(AdminTree::Changes, &c.id.to_be_bytes(), &enc(c)?)?)
    }

    pub fn change(&self, actor: &Account, id: u64) -> Result<ChangeRequest, AdminError> {
        actor.authorize(Permission::Read)?;
        self.get_change(id)
    }

    pub fn changes(&self, actor: &Account) -> Result<Vec<ChangeRequest>, AdminError> {
        actor.authorize(Permission::Read)?;
        self.all_changes()
    }

    pub(crate) fn all_changes_for_report(&self) -> Result<Vec<ChangeRequest>, AdminError> {
        self.all_changes()
    }

    /// The groups the configuration on disk defines, by name: what a change may name.
    pub fn groups(&self, actor: &Account) -> Result<Vec<String>, AdminError> {
        actor.authorize(Permission::Read)?;
        Ok(self
            .load_config()?
            .groups
            .into_iter()
            .map(|g| g.name)
            .collect())
    }

    fn all_changes(&self) -> Result<Vec<ChangeRequest>, AdminError> {
        self.store
            .admin_list(AdminTree::Changes)?
            .iter()
            .map(|(_, v)| dec(v))
            .collect()
    }

    pub(crate) fn load_config(&self) -> Result<Config, AdminError> {
        hedgerow_config::load(&self.config).map_err(|e| {
            AdminError::Validation(format!("the configuration on disk does not load:\n{e}"))
        })
    }

    /// Applies `edits` in memory and validates the result: the edited texts, the new config,
    /// and the snapshots before and after.
    fn dry_run(&self, config: &Config, edits: &[Edit]) -> Result<DryRun, AdminError> {
        let mut files = Files::read(config)?;
        for e in edits {
            files.apply(config, e)?;
        }
        let edited = files.edited();
        let overlay: HashMap<PathBuf, String> =
            edited.iter().map(|(p, t)| (p.clone(), t.clone())).collect();
        let after = hedgerow_config::load_with(&self.config, &overlay)
            .map_err(|e| AdminError::Validation(e.to_string()))?;
        let snap =
            PolicySnapshot::build(after).map_err(|e| AdminError::Validation(e.to_string()))?;
        Ok(DryRun {
            before: files.texts,
            edited,
            snap,
        })
    }

    fn preview(
        &self,
        config: &Config,
        before: &PolicySnapshot,
        run: &DryRun,
        edits: &[Edit],
        check: &[String],
    ) -> Preview {
        let mut diff = String::new();
        for (path, after) in &run.edited {
            let old = run.before.get(path).map_or("", String::as_str);
            if old == after {
                continue;
            }
            let name = path.display().to_string();
            diff.push_str(
                &similar::TextDiff::from_lines(old, after.as_str())
                    .unified_diff()
                    .header(&name, &name)
                    .to_string(),
            );
        }
        let mut targets: Vec<String> = check.to_vec();
        targets.extend(
            edits
                .iter()
                .filter_map(|e| e.named_target().map(str::to_owned)),
        );
        for cat in edits.iter().filter_map(Edit::category) {
            targets.extend(sample(config, cat, 3));
        }
        for path in edits.iter().filter_map(|e| added_list(config, e)) {
            targets.extend(sample_file(&path, 3));
        }
        targets.dedup();
        let mut groups: Vec<&str> = edits.iter().filter_map(Edit::group).collect();
        if groups.len() < edits.len() {
            groups = config.groups.iter().map(|g| g.name.as_str()).collect();
        }
        groups.sort_unstable();
        groups.dedup();
        let now = self.now();
        let mut verdicts = Vec::new();
        for g in groups {
            let (Some(gb), Some(ga)) = (before.group_id(g), run.snap.group_id(g)) else {
                continue;
            };
            for t in &targets {
                let decide = |s: &PolicySnapshot, id| {
                    if t.contains('/') {
                        UrlKey::parse(t)
                            .ok()
                            .map(|u| s.decide(id, Target::Url(&u), now))
                    } else {
                        Host::parse(t)
                            .ok()
                            .map(|h| s.decide(id, Target::Host(&h), now))
                    }
                };
                let (Some(b), Some(a)) = (decide(before, gb), decide(&run.snap, ga)) else {
                    continue;
                };
                // Never show what the illegal tier holds.
                if b.tier == Tier::Illegal || a.tier == Tier::Illegal {
                    continue;
                }
                if b.action != a.action {
                    verdicts.push(VerdictChange {
                        group: g.to_owned(),
                        target: t.clone(),
                        before: b.action.to_string(),
                        after: a.action.to_string(),
                    });
                }
            }
        }
        Preview { diff, verdicts }
    }

    /// Records a change request with its preview. A change touching the illegal tier is
    /// refused outright; one whose edited configuration does not validate is recorded as
    /// failed, with why.
    pub fn propose(&self, actor: &Account, p: Proposal) -> Result<ChangeRequest, AdminError> {
        actor.authorize(Permission::Propose)?;
        self.propose_as(&actor.name, Origin::Proposal, None, p)
    }

    /// What `p` would do, without recording it: whether it loosens, the signatures it would
    /// need and its preview (the diff and the verdicts it changes). The console shows this
    /// before the proposer confirms. An edit touching the illegal tier is refused (and the
    /// refusal recorded) as [`Admin::propose`] refuses it.
    pub fn preview_proposal(
        &self,
        actor: &Account,
        p: &Proposal,
    ) -> Result<ProposalPreview, AdminError> {
        actor.authorize(Permission::Propose)?;
        if p.edits.is_empty() {
            return Err(AdminError::Invalid(
                "a change needs at least one edit".into(),
            ));
        }
        let config = self.load_config()?;
        let before = PolicySnapshot::build(config.clone())
            .map_err(|e| AdminError::Validation(e.to_string()))?;
        for e in &p.edits {
            if let Err(err) = e.check_illegal_tier(&before) {
                self.audit(
                    &actor.name,
                    "change-refused",
                    json(serde_json::json!({ "reason": err.to_string(), "preview": true })),
                )?;
                return Err(err);
            }
        }
        let direction = direction_of(&config, &p.edits);
        let needs = ChangeRequest::required(direction, p.risk.risk, &config.change_control);
        let run = self.dry_run(&config, &p.edits)?;
        let preview = self.preview(&config, &before, &run, &p.edits, &p.check);
        Ok(ProposalPreview {
            direction,
            needs,
            preview,
        })
    }

    fn propose_as(
        &self,
        by: &str,
        origin: Origin,
        reverts: Option<u64>,
        mut p: Proposal,
    ) -> Result<ChangeRequest, AdminError> {
        if p.reason.trim().is_empty() {
            return Err(AdminError::Invalid("a change needs a reason".into()));
        }
        if p.risk.justification.trim().is_empty() {
            return Err(AdminError::Invalid(
                "the risk assessment needs a justification for its rating".into(),
            ));
        }
        if p.edits.is_empty() {
            return Err(AdminError::Invalid(
                "a change needs at least one edit".into(),
            ));
        }
        let config = self.load_config()?;
        let before = PolicySnapshot::build(config.clone())
            .map_err(|e| AdminError::Validation(e.to_string()))?;
        for e in &p.edits {
            if let Err(err) = e.check_illegal_tier(&before) {
                // The edit itself is not recorded: it may name an illegal-tier entry.
                self.audit(
                    by,
                    "change-refused",
                    json(serde_json::json!({ "reason": err.to_string() })),
                )?;
                return Err(err);
            }
        }
        for g in &p.risk.groups {
            if !config.groups.iter().any(|x| &x.name == g) {
                return Err(AdminError::Invalid(format!("no group named {g:?}")));
            }
        }
        for e in &p.edits {
            if let Some(g) = e.group()
                && !p.risk.groups.iter().any(|x| x == g)
            {
                p.risk.groups.push(g.to_owned());
            }
        }
        let direction = direction_of(&config, &p.edits);
        // The approval rules are read from the files: an edit made by hand (a looser
        // `[change_control]`, say) is recorded and raised first, and nothing that loosens
        // the filter is proposed until an approver or the DSL has looked at it.
        if origin == Origin::Proposal && direction == Direction::Loosening {
            self.check_unreviewed()?;
            if let Some(u) = self
                .all_changes()?
                .iter()
                .find(|c| c.status == Status::Unreviewed)
            {
                return Err(AdminError::Invalid(format!(
                    "the configuration has an edit made outside change control (unreviewed change #{}); an approver or the DSL must look at it (`hedgerow change show {}`) before a change that loosens the filter is proposed",
                    u.id, u.id
                )));
            }
        }
        if p.risk.expires.is_some_and(|t| t <= self.now()) {
            return Err(AdminError::Invalid("the expiry is in the past".into()));
        }
        let _w = self.lock();
        let id = self.store.admin_next_id()?;
        let mut c = ChangeRequest {
            id,
            created: self.now(),
            origin,
            proposer: by.to_owned(),
            reason: p.reason.clone(),
            needs: ChangeRequest::required(direction, p.risk.risk, &config.change_control),
            risk: p.risk.clone(),
            edits: p.edits.clone(),
            direction,
            status: Status::Proposed,
            preview: Preview::default(),
            signatures: Vec::new(),
            rejected: None,
            applied_by: None,
            applied_at: None,
            files: Vec::new(),
            before: BTreeMap::new(),
            inverse: None,
            reverts,
            reverted_by: None,
            failure: None,
        };
        let result = self.dry_run(&config, &p.edits);
        match &result {
            Ok(run) => c.preview = self.preview(&config, &before, run, &p.edits, &p.check),
            Err(e) => {
                c.status = Status::Failed;
                c.failure = Some(e.to_string());
            }
        }
        self.put_change(&c)?;
        let edits: Vec<String> = c.edits.iter().map(Edit::describe).collect();
        self.audit(
            by,
            if c.status == Status::Failed {
                "change-failed"
            } else {
                "change-proposed"
            },
            json(serde_json::json!({
                "change": id, "origin": origin, "reason": c.reason, "edits": edits,
                "direction": direction, "risk": c.risk, "failure": c.failure,
            })),
        )?;
        match result {
            Err(e) => Err(AdminError::Validation(format!("change #{id}: {e}"))),
            Ok(_) => Ok(c),
        }
    }

    /// Signs a change as approver and/or DSL; acknowledges a hand edit.
    pub fn approve(
        &self,
        actor: &Account,
        id: u64,
        note: &str,
    ) -> Result<ChangeRequest, AdminError> {
        let _w = self.lock();
        let mut c = self.get_change(id)?;
        if c.status == Status::Unreviewed {
            if !(actor.may(Permission::Approve) || actor.may(Permission::CoSign)) {
                actor.authorize(Permission::Approve)?;
            }
            c.status = Status::Acknowledged;
            c.signatures.push(Signature {
                by: actor.name.clone(),
                as_roles: actor.roles.iter().copied().collect(),
                time: self.now(),
                note: note.to_owned(),
            });
            self.put_change(&c)?;
            self.audit(
                &actor.name,
                "unreviewed-acknowledged",
                json(serde_json::json!({ "change": id, "note": note })),
            )?;
            return Ok(c);
        }
        if !(actor.may(Permission::Approve) || actor.may(Permission::CoSign)) {
            actor.authorize(Permission::Approve)?;
        }
        if c.status != Status::Proposed {
            return Err(AdminError::Conflict(format!(
                "change #{id} is {:?}, not waiting for approval",
                c.status
            )));
        }
        if c.proposer == actor.name {
            self.audit(
                &actor.name,
                "approval-refused",
                json(serde_json::json!({ "change": id, "reason": "self-approval" })),
            )?;
            return Err(AdminError::Conflict(format!(
                "change #{id} was proposed by {}: nobody may approve their own change",
                actor.name
            )));
        }
        if c.signatures.iter().any(|s| s.by == actor.name) {
            return Err(AdminError::Conflict(format!(
                "{} has signed change #{id} already: each signature must be another account's",
                actor.name
            )));
        }
        let missing = c.missing();
        let roles: Vec<Role> = c
            .signs_as(actor)
            .into_iter()
            .filter(|r| missing.contains(r))
            .collect();
        if roles.is_empty() {
            let missing: Vec<&str> = c.missing().iter().map(|r| r.as_str()).collect();
            return Err(AdminError::Forbidden(format!(
                "change #{id} needs {}; {} holds none of those roles (or has signed already)",
                if missing.is_empty() {
                    "no signature".into()
                } else {
                    missing.join(" and ")
                },
                actor.name
            )));
        }
        c.signatures.push(Signature {
            by: actor.name.clone(),
            as_roles: roles.clone(),
            time: self.now(),
            note: note.to_owned(),
        });
        if c.missing().is_empty() {
            c.status = Status::Approved;
        }
        self.put_change(&c)?;
        let as_roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        self.audit(
            &actor.name,
            "change-approved",
            json(serde_json::json!({ "change": id, "as": as_roles, "note": note, "status": c.status })),
        )?;
        Ok(c)
    }

    pub fn reject(
        &self,
        actor: &Account,
        id: u64,
        note: &str,
    ) -> Result<ChangeRequest, AdminError> {
        let _w = self.lock();
        if !(actor.may(Permission::Approve) || actor.may(Permission::CoSign)) {
            actor.authorize(Permission::Approve)?;
        }
        let mut c = self.get_change(id)?;
        if !matches!(c.status, Status::Proposed | Status::Approved) {
            return Err(AdminError::Conflict(format!(
                "change #{id} is {:?}: it can no longer be rejected",
                c.status
            )));
        }
        c.status = Status::Rejected;
        c.rejected = Some(Signature {
            by: actor.name.clone(),
            as_roles: actor.roles.iter().copied().collect(),
            time: self.now(),
            note: note.to_owned(),
        });
        self.put_change(&c)?;
        self.audit(
            &actor.name,
            "change-rejected",
            json(serde_json::json!({ "change": id, "note": note })),
        )?;
        Ok(c)
    }

    /// Applies a change whose signatures are complete (a tightening one needs none).
    pub fn apply(&self, actor: &Account, id: u64) -> Result<ChangeRequest, AdminError> {
        actor.authorize(Permission::Apply)?;
        let _w = self.lock();
        self.apply_locked(&actor.name, id)
    }

    fn apply_locked(&self, by: &str, id: u64) -> Result<ChangeRequest, AdminError> {
        let mut c = self.get_change(id)?;
        if !matches!(c.status, Status::Proposed | Status::Approved) {
            return Err(AdminError::Conflict(format!(
                "change #{id} is {:?}: only a proposed or approved change can be applied",
                c.status
            )));
        }
        let missing = c.missing();
        if !missing.is_empty() {
            let m: Vec<&str> = missing.iter().map(|r| r.as_str()).collect();
            return Err(AdminError::Conflict(format!(
                "change #{id} still needs the signature of: {}",
                m.join(", ")
            )));
        }
        match self.write_edits(&c.edits) {
            Ok(done) => {
                c.status = Status::Applied;
                c.applied_by = Some(by.to_owned());
                c.applied_at = Some(self.now());
                c.files = done.files;
                c.before = done.before;
                c.inverse = done.inverse;
                self.put_change(&c)?;
                self.audit(
                    by,
                    "change-applied",
                    json(serde_json::json!({ "change": id, "files": c.files, "reload": done.reload })),
                )?;
                if let Some(of) = c.reverts
                    && let Ok(mut old) = self.get_change(of)
                {
                    old.status = Status::Reverted;
                    old.reverted_by = Some(id);
                    self.put_change(&old)?;
                }
                Ok(c)
            }
            Err(e) => {
                c.failure = Some(e.to_string());
                self.put_change(&c)?;
                self.audit(
                    by,
                    "change-apply-failed",
                    json(serde_json::json!({ "change": id, "failure": c.failure })),
                )?;
                Err(e)
            }
        }
    }

    /// Edits, validates, writes atomically and reloads; on any failure every file is as it
    /// was.
    fn write_edits(&self, edits: &[Edit]) -> Result<Written, AdminError> {
        let config = self.load_config()?;
        let run = self.dry_run(&config, edits)?;
        let inverse: Option<Vec<Edit>> = edits.iter().rev().map(|e| e.inverse(&config)).collect();
        let mut files = Vec::new();
        let mut before = BTreeMap::new();
        let mut written: Vec<(PathBuf, String)> = Vec::new();
        for (path, text) in &run.edited {
            let old = run.before.get(path).cloned().unwrap_or_default();
            if &old == text {
                continue;
            }
            if let Err(e) = write_atomic(path, text) {
                for (p, t) in &written {
                    let _ = write_atomic(p, t);
                }
                return Err(AdminError::Internal(format!(
                    "writing {}: {e}",
                    path.display()
                )));
            }
            files.push(FileHashes {
                path: path.clone(),
                before: sha(&old),
                after: sha(text),
            });
            written.push((path.clone(), old.clone()));
            before.insert(path.clone(), old);
        }
        // The reviewed state moves with the files, so the reload does not call this a hand edit.
        let reviewed_before = self.reviewed()?;
        for (path, text) in &run.edited {
            self.put_reviewed(path, text)?;
        }
        match (self.reload)() {
            Ok(report) => Ok(Written {
                files,
                before,
                inverse,
                reload: report,
            }),
            Err(why) => {
                for (p, t) in &written {
                    let _ = write_atomic(p, t);
                }
                for (p, t) in &reviewed_before {
                    self.put_reviewed(p, t)?;
                }
                Err(AdminError::Validation(format!(
                    "the appliance refused to reload it: {why}"
                )))
            }
        }
    }

    /// A new change that undoes `id`: its inverse edits, or with `whole` every file as it was
    /// before `id` was applied. It is applied at once if it needs no signature.
    pub fn revert(
        &self,
        actor: &Account,
        id: u64,
        whole: bool,
        reason: &str,
    ) -> Result<ChangeRequest, AdminError> {
        actor.authorize(Permission::Propose)?;
        let old = self.get_change(id)?;
        let c = self.revert_as(&actor.name, Origin::Revert, &old, whole, reason)?;
        if c.missing().is_empty() && actor.may(Permission::Apply) {
            return self.apply(actor, c.id);
        }
        Ok(c)
    }

    fn revert_as(
        &self,
        by: &str,
        origin: Origin,
        old: &ChangeRequest,
        whole: bool,
        reason: &str,
    ) -> Result<ChangeRequest, AdminError> {
        if old.status != Status::Applied {
            return Err(AdminError::Conflict(format!(
                "change #{} is {:?}: only an applied change can be reverted",
                old.id, old.status
            )));
        }
        let edits = match (&old.inverse, whole) {
            (Some(inv), false) => inv.clone(),
            _ => vec![Edit::RestoreFiles {
                files: old.before.clone(),
            }],
        };
        let groups = old.risk.groups.clone();
        self.propose_as(
            by,
            origin,
            Some(old.id),
            Proposal {
                reason: if reason.trim().is_empty() {
                    format!("revert of change #{}", old.id)
                } else {
                    format!("revert of change #{}: {reason}", old.id)
                },
                risk: crate::RiskAssessment {
                    groups,
                    risk: Risk::Low,
                    justification: format!(
                        "restores the filtering in force before change #{}",
                        old.id
                    ),
                    benefit: String::new(),
                    mitigations: String::new(),
                    expires: None,
                },
                edits,
                check: Vec::new(),
            },
        )
    }

    /// Reverts every applied time-limited exception whose expiry has passed, through the same
    /// path as any change, recorded as its own change. Returns the new changes.
    pub fn expire(&self) -> Result<Vec<ChangeRequest>, AdminError> {
        let now = self.now();
        let due: Vec<ChangeRequest> = self
            .all_changes()?
            .into_iter()
            .filter(|c| {
                c.status == Status::Applied
                    && c.reverted_by.is_none()
                    && c.risk.expires.is_some_and(|t| t <= now)
            })
            .collect();
        let mut out = Vec::new();
        for old in due {
            let reason = format!("expired at {}", old.risk.expires.unwrap_or(now));
            let c = match self.revert_as(APPLIANCE, Origin::Expiry, &old, false, &reason) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(change = old.id, "expiry revert could not be proposed: {e}");
                    continue;
                }
            };
            let _w = self.lock();
            // The appliance applies its own expiry revert: it restores what was approved
            // before, so it needs nobody's signature to make filtering stricter again.
            let mut c2 = c;
            c2.needs.clear();
            self.put_change(&c2)?;
            match self.apply_locked(APPLIANCE, c2.id) {
                Ok(done) => out.push(done),
                Err(e) => tracing::error!(change = old.id, "expiry revert failed: {e}"),
            }
        }
        Ok(out)
    }

    // ---- hand edits ----

    fn reviewed(&self) -> Result<BTreeMap<PathBuf, String>, AdminError> {
        self.store
            .admin_list(AdminTree::Reviewed)?
            .iter()
            .map(|(k, v)| {
                Ok((
                    PathBuf::from(String::from_utf8_lossy(k).into_owned()),
                    dec(v)?,
                ))
            })
            .collect()
    }

    fn put_reviewed(&self, path: &Path, text: &str) -> Result<(), AdminError> {
        Ok(self.store.admin_put(
            AdminTree::Reviewed,
            path.to_string_lossy().as_bytes(),
            &enc(&text)?,
        )?)
    }

    /// Compares the configuration files with what the workflow last wrote or reviewed. The
    /// first time, it records them. A difference is recorded as an unreviewed change, with its
    /// diff, for approvers and the DSL to acknowledge. Call at start and at every reload.
    pub fn check_unreviewed(&self) -> Result<Option<ChangeRequest>, AdminError> {
        let _w = self.lock();
        let reviewed = self.reviewed()?;
        let mut paths: BTreeSet<PathBuf> = match hedgerow_config::load(&self.config) {
            Ok(c) => c.files.into_iter().collect(),
            Err(_) => [self.config.clone()].into_iter().collect(),
        };
        paths.extend(reviewed.keys().cloned());
        let mut now_texts = BTreeMap::new();
        for p in &paths {
            if let Ok(t) = std::fs::read_to_string(p) {
                now_texts.insert(p.clone(), t);
            }
        }
        if reviewed.is_empty() {
            for (p, t) in &now_texts {
                self.put_reviewed(p, t)?;
            }
            return Ok(None);
        }
        let mut diff = String::new();
        let mut files = Vec::new();
        for p in &paths {
            let old = reviewed.get(p).map_or("", String::as_str);
            let new = now_texts.get(p).map_or("", String::as_str);
            if old == new {
                continue;
            }
            let name = p.display().to_string();
            diff.push_str(
                &similar::TextDiff::from_lines(old, new)
                    .unified_diff()
                    .header(&name, &name)
                    .to_string(),
            );
            files.push(FileHashes {
                path: p.clone(),
                before: sha(old),
                after: sha(new),
            });
        }
        if files.is_empty() {
            return Ok(None);
        }
        let diff = withhold_illegal(&self.config, &diff);
        let id = self.store.admin_next_id()?;
        let c = ChangeRequest {
            id,
            created: self.now(),
            origin: Origin::HandEdit,
            proposer: "(hand edit)".into(),
            reason: "configuration files were edited outside change control".into(),
            risk: crate::RiskAssessment {
                groups: Vec::new(),
                risk: Risk::High,
                justification: "not assessed: made outside the workflow".into(),
                benefit: String::new(),
                mitigations: String::new(),
                expires: None,
            },
            edits: Vec::new(),
            direction: Direction::Loosening,
            status: Status::Unreviewed,
            preview: Preview {
                diff,
                verdicts: Vec::new(),
            },
            needs: vec![Role::Approver, Role::Dsl],
            signatures: Vec::new(),
            rejected: None,
            applied_by: None,
            applied_at: None,
            files,
            before: reviewed.clone(),
            inverse: None,
            reverts: None,
            reverted_by: None,
            failure: None,
        };
        self.put_change(&c)?;
        self.audit(
            APPLIANCE,
            "unreviewed-change",
            json(serde_json::json!({ "change": id, "files": c.files, "diff": c.preview.diff })),
        )?;
        tracing::warn!(
            change = id,
            "configuration edited outside change control: recorded as unreviewed change #{id} for the approvers and the DSL"
        );
        for (p, t) in &now_texts {
            self.put_reviewed(p, t)?;
        }
        if let Some(notify) = &self.notify {
            notify(&c);
        }
        Ok(Some(c))
    }

    // ---- audit ----

    pub fn audit_log(&self, actor: &Account) -> Result<Vec<AuditEntry>, AdminError> {
        actor.authorize(Permission::Read)?;
        Ok(self.store.audit()?)
    }

    pub fn audit_verify(&self, actor: &Account) -> Result<AuditCheck, AdminError> {
        actor.authorize(Permission::Read)?;
        Ok(self.store.verify_audit()?)
    }

    /// Reloads the running appliance on request, then looks for hand edits.
    pub fn reload(&self, actor: &Account) -> Result<String, AdminError> {
        actor.authorize(Permission::Reload)?;
        self.reload_as(&actor.name, None)
    }

    /// Reloads for the service manager (`systemctl reload`), which proved itself with the
    /// appliance's reload key: recorded as the appliance's own reload.
    pub fn reload_by_key(&self) -> Result<String, AdminError> {
        self.reload_as(
            APPLIANCE,
            Some("the service manager, with STATE/reload.key"),
        )
    }

    /// Records a reload asked for by signal (SIGHUP), which no account signed: the appliance's
    /// own, with its outcome. Then, if it took effect, looks for hand edits.
    pub fn record_signal_reload(&self, result: &Result<String, String>) -> Result<(), AdminError> {
        self.audit(
            APPLIANCE,
            if result.is_ok() {
                "reload"
            } else {
                "reload-refused"
            },
            json(serde_json::json!({
                "report": result.as_ref().unwrap_or_else(|e| e), "via": "SIGHUP"
            })),
        )?;
        if result.is_ok() {
            self.check_unreviewed()?;
        }
        Ok(())
    }

    fn reload_as(&self, by: &str, via: Option<&str>) -> Result<String, AdminError> {
        let result = (self.reload)();
        self.audit(
            by,
            if result.is_ok() {
                "reload"
            } else {
                "reload-refused"
            },
            json(serde_json::json!({
                "report": result.as_ref().unwrap_or_else(|e| e), "via": via
            })),
        )?;
        let report = result.map_err(AdminError::ReloadRefused)?;
        self.check_unreviewed()?;
        Ok(report)
    }

    // ---- pupil-level records ----

    /// Refuses `q` unless `actor` may read it, and records the view in the audit log (before
    /// anything is read).
    pub fn authorize_query(
        &self,
        actor: &Account,
        q: &crate::records::Query,
    ) -> Result<(), AdminError> {
        actor.authorize(q.permission())?;
        crate::records::record_view(&self.store, self.now(), &actor.name, q)
    }

    /// Refuses an export of the whole store unless `actor` may read pupil-level data, and
    /// records it in the audit log.
    pub fn authorize_export(&self, actor: &Account) -> Result<(), AdminError> {
        actor.authorize(Permission::PupilData)?;
        crate::records::record_export(&self.store, self.now(), &actor.name, None)
    }

    /// Decides a review request from the block page, as `actor`.
    pub fn decide_review(
        &self,
        actor: &Account,
        reference: u64,
        status: hedgerow_store::ReviewStatus,
        note: Option<&str>,
    ) -> Result<hedgerow_store::ReviewRequest, AdminError> {
        actor.authorize(Permission::Reviews)?;
        match status {
            hedgerow_store::ReviewStatus::Declined if note.is_none_or(|n| n.trim().is_empty()) => {
                return Err(AdminError::Invalid(
                    "a declined review request needs a reason (the note): the requester sees it"
                        .into(),
                ));
            }
            hedgerow_store::ReviewStatus::ChangeRequested => {
                return Err(AdminError::Invalid(
                    "turn a review request into a change request with POST /api/v1/reviews/REF/change".into(),
                ));
            }
            _ => {}
        }
        crate::records::decide_review(
            &self.store,
            self.now(),
            &actor.name,
            reference,
            status,
            note,
        )
    }
}

/// A hand edit's diff with every changed line that names something the illegal tier covers
/// withheld (the diff is stored, audited and sent in alerts).
fn withhold_illegal(config: &Path, diff: &str) -> String {
    let Ok(snap) = hedgerow_config::load(config)
        .map_err(|e| e.to_string())
        .and_then(|c| PolicySnapshot::build(c).map_err(|e| e.to_string()))
    else {
        return diff.to_owned();
    };
    let mut out = String::with_capacity(diff.len());
    for line in diff.lines() {
        let changed = (line.starts_with('+') && !line.starts_with("+++"))
            || (line.starts_with('-') && !line.starts_with("---"));
        let names_illegal = changed
            && line
                .split('"')
                .skip(1)
                .step_by(2)
                .any(|s| !s.is_empty() && snap.illegal_tier_covers(s));
        if names_illegal {
            out.push_str(&line[..1]);
            out.push_str("[line withheld: it names an entry the illegal tier covers]");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

struct DryRun {
    before: BTreeMap<PathBuf, String>,
    edited: BTreeMap<PathBuf, String>,
    snap: PolicySnapshot,
}

struct Written {
    files: Vec<FileHashes>,
    before: BTreeMap<PathBuf, String>,
    inverse: Option<Vec<Edit>>,
    reload: String,
}

/// A few entries of the block lists of `category`, to show how its verdicts change. Only
/// domain lists of kind block: never the illegal tier.
fn sample(config: &Config, category: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for l in &config.lists {
        if l.kind != ListKind::Block
            || l.format != ListFormat::Domains
            || l.category.as_ref().map(|c| c.as_str()) != Some(category)
        {
            continue;
        }
        out.extend(sample_file(&l.path, n - out.len()));
        if out.len() >= n {
            break;
        }
    }
    out
}

/// The first `n` host names of a domain list file.
fn sample_file(path: &Path, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    for line in text.lines() {
        if out.len() >= n {
            break;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let host = line.split_whitespace().last().unwrap_or(line);
        if Host::parse(host).is_ok() {
            out.push(host.to_owned());
        }
    }
    out
}

/// A list source an edit adds or redefines, whose entries the preview samples: a domain list
/// that is not the illegal tier's, its path resolved as the configuration resolves it.
fn added_list(config: &Config, e: &Edit) -> Option<PathBuf> {
    let (Edit::AddList { list, .. } | Edit::ChangeList { list, .. }) = e else {
        return None;
    };
    if list.kind == ListKind::Illegal || list.format != ListFormat::Domains {
        return None;
    }
    let p = Path::new(&list.path);
    match (
        p.is_relative(),
        config.files.first().and_then(|f| f.parent()),
    ) {
        (true, Some(dir)) => Some(dir.join(p)),
        _ => Some(p.to_owned()),
    }
}

/// Writes `text` to `path` atomically: a temporary file beside it, fsync, rename, fsync of
/// the folder. Keeps the file's permissions.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.hedgerow-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
