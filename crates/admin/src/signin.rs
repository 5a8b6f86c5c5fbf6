//! Sign-in security for the web console and the API: passwords (argon2) and the TOTP second
//! factor ([`crate::totp`]), rate limits and lockouts, sessions with an idle timeout, signing
//! out, and re-authentication before sensitive actions. Every sign-in, failure, lockout, TOTP
//! enrolment and reset goes to the audit log; a password or a code never does.
//!
//! # Who must use TOTP
//!
//! [`needs_totp`]: technicians, the DSL and deputies, and approvers. The console
//! ([`Admin::sign_in`]) lets such an account without an authenticator do nothing but enrol one
//! ([`SignIn::EnrolTotp`]). The API ([`Admin::api_login`]) does not force enrolment, so the
//! CLI and scripts keep working, but an account that has enrolled needs its code there too.
//! API tokens (for scripts) are not sessions and take no code.
//!
//! # Rate limits
//!
//! Five failures in a row lock an account name for 15 minutes, whether the account exists or
//! not (so a lockout does not tell which names are real); twenty failures within 15 minutes
//! from one address lock that address out for 15 minutes. While locked, sign-in is refused
//! with [`AdminError::Locked`] (HTTP 429) before any password is checked; a success clears the
//! account's run of failures. Wrong passwords at re-authentication count against the account
//! too, and a lockout there also ends the account's sessions (someone else may be at the
//! keyboard). The counts are kept in memory: a restart clears them. An unknown account's
//! password is checked against a dummy argon2 hash, so it takes as long as a known one's.
//!
//! # Sessions
//!
//! A session is a random bearer token, kept only as its SHA-256 in memory, new at every
//! sign-in (never reused), ended by [`Admin::sign_out`], by the account being disabled or its
//! TOTP reset, after 8 hours, or when unused for the idle timeout (`[console] idle_timeout`,
//! 30 minutes when unset; read at each sign-in). API sessions get the same idle timeout: the
//! CLI signs in for each command.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, OnceLock};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::accounts::{self, Account, Permission, Role, StoredAccount};
use crate::service::APPLIANCE;
use crate::totp::{self, SecretsKey, StoredTotp, TotpEnrolment};
use crate::{Admin, AdminError};

/// How long a session lasts at most, used or not.
const SESSION: SignedDuration = SignedDuration::from_hours(8);
/// How long a session that may only enrol TOTP lasts.
const ENROLMENT_SESSION: SignedDuration = SignedDuration::from_mins(10);
/// How long a begun enrolment waits for its first code.
const ENROLMENT_WAIT: SignedDuration = SignedDuration::from_mins(10);
/// The idle timeout when `[console] idle_timeout` is not set (or the configuration does not
/// load): also the most it may be.
const DEFAULT_IDLE: SignedDuration = SignedDuration::from_mins(30);

/// Failures in a row that lock an account name.
pub const ACCOUNT_FAILURES: u32 = 5;
/// Failures from one address within [`LOCKOUT`] that lock the address out.
pub const SOURCE_FAILURES: usize = 20;
/// How long a lockout lasts (and the window [`SOURCE_FAILURES`] are counted in).
pub const LOCKOUT: SignedDuration = SignedDuration::from_mins(15);
/// Names and addresses tracked before old, unlocked ones are forgotten.
const TRACKED: usize = 10_000;

/// Where a sign-in comes from: the console forces TOTP enrolment, the API does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Front {
    Console,
    Api,
}

impl Front {
    fn as_str(self) -> &'static str {
        match self {
            Front::Console => "console",
            Front::Api => "api",
        }
    }
}

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Everything the account's roles allow.
    Full,
    /// Only set up a TOTP authenticator ([`Admin::totp_begin`], [`Admin::totp_confirm`],
    /// [`Admin::finish_enrolment`]); [`Admin::authenticate`] refuses it.
    TotpEnrolment,
}

/// A signed-in session.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// Bearer token for this session (the console's cookie); shown once.
    pub token: String,
    pub account: Account,
    /// When it ends however much it is used.
    pub expires: Timestamp,
    /// It also ends when unused this long.
    #[serde(with = "secs")]
    pub idle_timeout: SignedDuration,
    pub scope: Scope,
}

mod secs {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &jiff::SignedDuration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.as_secs())
    }
}

/// The outcome of a console sign-in that was not refused.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", content = "session", rename_all = "kebab-case")]
pub enum SignIn {
    /// Signed in.
    SignedIn(Session),
    /// Right password, but the account's roles need TOTP and it has none: the session (scope
    /// [`Scope::TotpEnrolment`], 10 minutes) may only enrol an authenticator, then
    /// [`Admin::finish_enrolment`] exchanges it for a full one.
    EnrolTotp(Session),
}

/// Whether `account`'s roles require a TOTP second factor: technicians, the DSL and deputies,
/// and approvers (everyone but a governor).
pub fn needs_totp(account: &Account) -> bool {
    account.roles.iter().any(|r| {
        matches!(
            r,
            Role::Technician | Role::Dsl | Role::DeputyDsl | Role::Approver
        )
    })
}

/// The source address the appliance's own Unix socket counts as: the unspecified address,
/// which no network client has (a loopback TCP client is `127.0.0.1`, and is not local in
/// this sense: it did not prove it can read the appliance's state directory).
pub const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

struct Live {
    account: String,
    scope: Scope,
    last_used: Timestamp,
    expires: Timestamp,
    idle: SignedDuration,
}

impl Live {
    fn alive(&self, now: Timestamp) -> bool {
        now < self.expires && now.duration_since(self.last_used) < self.idle
    }
}

#[derive(Default)]
struct NameFailures {
    in_a_row: u32,
    last: Option<Timestamp>,
    locked_until: Option<Timestamp>,
}

#[derive(Default)]
struct SourceFailures {
    recent: VecDeque<Timestamp>,
    locked_until: Option<Timestamp>,
}

#[derive(Default)]
struct Failures {
    names: HashMap<String, NameFailures>,
    sources: HashMap<IpAddr, SourceFailures>,
}

/// What a failure led to.
#[derive(Default)]
struct Locked {
    name: Option<Timestamp>,
    source: Option<Timestamp>,
}

impl Failures {
    /// The end of the lockout `name` or `source` is under, if any.
    fn locked(&self, name: &str, source: Option<IpAddr>, now: Timestamp) -> Option<Timestamp> {
        let n = self
            .names
            .get(name)
            .and_then(|f| f.locked_until)
            .filter(|t| *t > now);
        let s = source
            .and_then(|s| self.sources.get(&s))
            .and_then(|f| f.locked_until)
            .filter(|t| *t > now);
        n.max(s)
    }

    fn fail(&mut self, name: &str, source: Option<IpAddr>, now: Timestamp) -> Locked {
        self.forget_old(now);
        let mut out = Locked::default();
        let f = self.names.entry(name.to_owned()).or_default();
        if f.locked_until.is_some_and(|t| t <= now) {
            *f = NameFailures::default();
        }
        f.in_a_row += 1;
        f.last = Some(now);
        if f.in_a_row >= ACCOUNT_FAILURES && f.locked_until.is_none() {
            f.locked_until = Some(now + LOCKOUT);
            out.name = f.locked_until;
        }
        if let Some(ip) = source {
            let f = self.sources.entry(ip).or_default();
            if f.locked_until.is_some_and(|t| t <= now) {
                *f = SourceFailures::default();
            }
            while f
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= LOCKOUT)
            {
                f.recent.pop_front();
            }
            f.recent.push_back(now);
            if f.recent.len() >= SOURCE_FAILURES && f.locked_until.is_none() {
                f.locked_until = Some(now + LOCKOUT);
                out.source = f.locked_until;
            }
        }
        out
    }

    fn succeed(&mut self, name: &str) {
        self.names.remove(name);
    }

    /// Bounds the memory a spray of names or addresses can take: past [`TRACKED`], entries
    /// neither locked nor failed within [`LOCKOUT`] are dropped.
    fn forget_old(&mut self, now: Timestamp) {
        let stale = |last: Option<Timestamp>, until: Option<Timestamp>| {
            until.is_none_or(|t| t <= now) && last.is_none_or(|t| now.duration_since(t) >= LOCKOUT)
        };
        if self.names.len() >= TRACKED {
            self.names.retain(|_, f| !stale(f.last, f.locked_until));
        }
        if self.sources.len() >= TRACKED {
            self.sources
                .retain(|_, f| !stale(f.recent.back().copied(), f.locked_until));
        }
    }
}

struct Pending {
    secret: Vec<u8>,
    started: Timestamp,
}

/// Sign-in state an [`Admin`] keeps in memory.
#[derive(Default)]
pub(crate) struct SignInState {
    /// Session token hash → session.
    sessions: Mutex<HashMap<String, Live>>,
    failures: Mutex<Failures>,
    /// Account → the secret of an enrolment begun and not yet confirmed.
    pending: Mutex<HashMap<String, Pending>>,
    key: Mutex<Option<Arc<SecretsKey>>>,
    /// A hash no password matches, to check an unknown account's password against.
    dummy: OnceLock<String>,
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SignInState {
    /// Ends every session of `account`.
    pub(crate) fn end_sessions(&self, account: &str) {
        guard(&self.sessions).retain(|_, s| s.account != account);
    }
}

/// The failure message: the same whichever part was wrong, and for unknown accounts.
fn refused() -> AdminError {
    AdminError::Unauthenticated("wrong account name, password or authenticator code".into())
}

fn locked(until: Timestamp) -> AdminError {
    AdminError::Locked(format!(
        "too many failed sign-ins: try again after {} UTC",
        until.strftime("%Y-%m-%d %H:%M:%S")
    ))
}

fn json(v: serde_json::Value) -> String {
    v.to_string()
}

impl Admin {
    fn secrets_key(&self) -> Result<Arc<SecretsKey>, AdminError> {
        let mut k = guard(&self.signin.key);
        if let Some(k) = &*k {
            return Ok(k.clone());
        }
        // The store is `STATE/store`; the key sits beside it, in the state directory.
        let dir = self
            .store()
            .path()
            .parent()
            .unwrap_or(self.store().path())
            .to_owned();
        let key = Arc::new(SecretsKey::load_or_create(&dir.join(totp::SECRETS_KEY))?);
        *k = Some(key.clone());
        Ok(key)
    }

    fn idle_timeout(&self) -> SignedDuration {
        hedgerow_config::load(self.config_path())
            .ok()
            .and_then(|c| c.console)
            .and_then(|c| SignedDuration::try_from(c.idle_timeout).ok())
            .map_or(DEFAULT_IDLE, |d| d.min(DEFAULT_IDLE))
    }

    fn dummy_hash(&self) -> &str {
        self.signin.dummy.get_or_init(|| {
            let mut raw = [0u8; 24];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
            accounts::hash_password(&accounts::hex(&raw)).unwrap_or_default()
        })
    }

    /// Whether `password` is the account's: argon2 always runs, against a dummy hash for an
    /// unknown, disabled or password-less account, so the time taken does not tell them apart.
    fn password_ok(&self, account: Option<&StoredAccount>, password: &str) -> bool {
        match account.and_then(|a| a.password.as_deref().filter(|_| !a.disabled)) {
            Some(hash) => accounts::check_password(hash, password),
            None => {
                accounts::check_password(self.dummy_hash(), password);
                false
            }
        }
    }

    /// Whether `code` is good for `name`'s enrolled authenticator now; if so, its step is
    /// recorded so it cannot be used again. Serialised with every other account edit, so two
    /// sign-ins racing with one code do not both pass.
    fn use_code(&self, name: &str, code: Option<&str>) -> Result<bool, AdminError> {
        let Some(code) = code else { return Ok(false) };
        let _w = self.lock();
        let Some(mut a) = self.stored(name)? else {
            return Ok(false);
        };
        let Some(t) = a.totp.as_mut() else {
            return Ok(false);
        };
        let secret = self.secrets_key()?.open(name, &t.sealed)?;
        let now = u64::try_from(self.now().as_second()).unwrap_or(0);
        match totp::verify(&secret, name, code, now, Some(t.last_step))? {
            Some(step) => {
                t.last_step = step;
                self.put_account(&a)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Records a failure of `name` (and `source`) and audits it and any lockout it causes.
    fn failed(
        &self,
        action: &str,
        name: &str,
        source: Option<IpAddr>,
        via: &str,
    ) -> Result<Locked, AdminError> {
        let now = self.now();
        let key: String = name.chars().take(64).collect();
        let locked = guard(&self.signin.failures).fail(&key, source, now);
        // The name tried is recorded; the password and the code never are.
        self.audit(
            APPLIANCE,
            action,
            json(serde_json::json!({ "account": key, "source": source, "via": via })),
        )?;
        if let Some(until) = locked.name {
            tracing::warn!(account = %key, "{ACCOUNT_FAILURES} failed sign-ins in a row: locked until {until}");
            self.audit(
                APPLIANCE,
                "lockout",
                json(
                    serde_json::json!({ "account": key, "until": until, "via": via,
                    "failures": ACCOUNT_FAILURES }),
                ),
            )?;
        }
        if let (Some(until), Some(ip)) = (locked.source, source) {
            tracing::warn!(source = %ip, "{SOURCE_FAILURES} failed sign-ins from one address: locked out until {until}");
            self.audit(
                APPLIANCE,
                "lockout",
                json(
                    serde_json::json!({ "source": ip, "until": until, "via": via,
                    "failures": SOURCE_FAILURES }),
                ),
            )?;
        }
        Ok(locked)
    }

    /// A new session for `a`: a fresh random token, kept as its hash.
    fn session(&self, a: &StoredAccount, scope: Scope, idle: SignedDuration) -> Session {
        let (token, hash) = accounts::new_token();
        let now = self.now();
        let life = match scope {
            Scope::Full => SESSION,
            Scope::TotpEnrolment => ENROLMENT_SESSION,
        };
        let live = Live {
            account: a.name.clone(),
            scope,
            last_used: now,
            expires: now + life,
            idle: idle.min(life),
        };
        let session = Session {
            token,
            account: a.view(),
            expires: live.expires,
            idle_timeout: live.idle,
            scope,
        };
        let mut s = guard(&self.signin.sessions);
        s.retain(|_, l| l.alive(now));
        s.insert(hash, live);
        session
    }

    fn sign_in_via(
        &self,
        front: Front,
        name: &str,
        password: &str,
        code: Option<&str>,
        source: IpAddr,
    ) -> Result<SignIn, AdminError> {
        let key: String = name.chars().take(64).collect();
        if let Some(until) = guard(&self.signin.failures).locked(&key, Some(source), self.now()) {
            return Err(locked(until));
        }
        let a = self.stored(name)?;
        let mut ok = self.password_ok(a.as_ref(), password);
        let a = a.filter(|_| ok);
        // The code is checked (and used up) only after the password passed.
        if let Some(acc) = &a
            && acc.totp.is_some()
        {
            ok = self.use_code(&acc.name, code)?;
        }
        let Some(a) = a.filter(|_| ok) else {
            self.failed("login-failed", name, Some(source), front.as_str())?;
            return Err(refused());
        };
        guard(&self.signin.failures).succeed(&key);
        let view = a.view();
        let enrol = front == Front::Console && needs_totp(&view) && a.totp.is_none();
        let scope = if enrol {
            Scope::TotpEnrolment
        } else {
            Scope::Full
        };
        let session = self.session(&a, scope, self.idle_timeout());
        self.audit(
            &a.name,
            "login",
            json(serde_json::json!({ "account": a.name, "source": source,
                "via": front.as_str(), "totp": a.totp.is_some(),
                "scope": scope })),
        )?;
        Ok(if enrol {
            SignIn::EnrolTotp(session)
        } else {
            SignIn::SignedIn(session)
        })
    }

    /// Signs in to the web console from `source` (the browser's address): a new session, or,
    /// for an account whose roles need TOTP ([`needs_totp`]) and that has none, a session that
    /// may only enrol one. An account with TOTP must give its current `code`. Refused with
    /// [`AdminError::Unauthenticated`] (one message whatever was wrong) or, after too many
    /// failures, [`AdminError::Locked`].
    pub fn sign_in(
        &self,
        name: &str,
        password: &str,
        code: Option<&str>,
        source: IpAddr,
    ) -> Result<SignIn, AdminError> {
        self.sign_in_via(Front::Console, name, password, code, source)
    }

    /// Signs in to the API (`POST /api/v1/login`) from `source` ([`LOCAL`] on the Unix
    /// socket): as [`Self::sign_in`], except that on the Unix socket an account without TOTP
    /// is not made to enrol (the CLI and scripts keep working); over the network an account
    /// whose roles need TOTP and has none is refused until it enrols in the console. One with
    /// TOTP needs its code.
    pub fn api_login(
        &self,
        name: &str,
        password: &str,
        code: Option<&str>,
        source: IpAddr,
    ) -> Result<Session, AdminError> {
        let (SignIn::SignedIn(s) | SignIn::EnrolTotp(s)) =
            self.sign_in_via(Front::Api, name, password, code, source)?;
        // On the appliance's own socket (the CLI, scripts run by its user) a password is
        // enough until the person sets an authenticator up; over the network it is not.
        if source != LOCAL && needs_totp(&s.account) && !s.account.totp_enrolled {
            self.sign_out(&s.token)?;
            return Err(AdminError::Forbidden(
                "this account's roles need an authenticator (TOTP): set one up by signing in to the web console first".into(),
            ));
        }
        Ok(s)
    }

    /// Signs in with a password, as on the appliance's own socket ([`Self::api_login`] from
    /// [`LOCAL`], no code).
    pub fn login(&self, name: &str, password: &str) -> Result<Session, AdminError> {
        self.api_login(name, password, None, LOCAL)
    }

    fn authenticate_scoped(&self, token: &str, enrolment: bool) -> Result<Account, AdminError> {
        let hash = accounts::token_hash(token.trim());
        let now = self.now();
        let session = {
            let mut s = guard(&self.signin.sessions);
            s.retain(|_, l| l.alive(now));
            match s.get_mut(&hash) {
                Some(l) if l.scope == Scope::TotpEnrolment && !enrolment => {
                    return Err(AdminError::Forbidden(
                        "this session may only set up an authenticator (TOTP): enrol one first"
                            .into(),
                    ));
                }
                Some(l) => {
                    l.last_used = now;
                    Some(l.account.clone())
                }
                None => None,
            }
        };
        let account = match session {
            Some(name) => self.stored(&name)?,
            // API tokens never enrol.
            None if !enrolment => self
                .all_accounts()?
                .into_iter()
                .find(|a| a.tokens.contains(&hash)),
            None => None,
        };
        match account {
            Some(a) if !a.disabled => Ok(a.view()),
            _ => Err(AdminError::Unauthenticated(
                "the token is unknown, expired or its account disabled".into(),
            )),
        }
    }

    /// The account a bearer token (a full session's or an API token) belongs to; the session
    /// counts as used now. A session that may only enrol TOTP is refused
    /// ([`AdminError::Forbidden`]).
    pub fn authenticate(&self, token: &str) -> Result<Account, AdminError> {
        self.authenticate_scoped(token, false)
    }

    /// The account a session belongs to, for the TOTP enrolment pages: either kind of
    /// session (not API tokens).
    pub fn authenticate_enrolment(&self, token: &str) -> Result<Account, AdminError> {
        self.authenticate_scoped(token, true)
    }

    /// Ends the session `token`. Signing out of a session that has ended already is not an
    /// error.
    pub fn sign_out(&self, token: &str) -> Result<(), AdminError> {
        let hash = accounts::token_hash(token.trim());
        let gone = guard(&self.signin.sessions).remove(&hash);
        if let Some(l) = gone {
            self.audit(
                &l.account,
                "logout",
                json(serde_json::json!({ "account": l.account })),
            )?;
        }
        Ok(())
    }

    /// Asks `actor` to prove it is still them before an export, an approval or a role change:
    /// the account's password and, if it has TOTP, a fresh code. Audited; failures count
    /// towards the account's lockout like sign-in's, and a lockout here also ends the
    /// account's sessions.
    pub fn reauthenticate(
        &self,
        actor: &Account,
        password: &str,
        code: Option<&str>,
    ) -> Result<(), AdminError> {
        let key: String = actor.name.chars().take(64).collect();
        if let Some(until) = guard(&self.signin.failures).locked(&key, None, self.now()) {
            return Err(locked(until));
        }
        let a = self.stored(&actor.name)?;
        let mut ok = self.password_ok(a.as_ref(), password);
        if ok
            && let Some(acc) = &a
            && acc.totp.is_some()
        {
            ok = self.use_code(&acc.name, code)?;
        }
        if !ok {
            let locked = self.failed("reauth-failed", &actor.name, None, "reauth")?;
            if locked.name.is_some() {
                self.signin.end_sessions(&actor.name);
            }
            return Err(AdminError::Unauthenticated(
                "wrong password or authenticator code".into(),
            ));
        }
        guard(&self.signin.failures).succeed(&key);
        self.audit(
            &actor.name,
            "reauth",
            json(serde_json::json!({ "account": actor.name })),
        )?;
        Ok(())
    }

    // ---- TOTP ----

    /// Begins enrolling a TOTP authenticator for `actor` itself: a new secret, its otpauth URL
    /// and QR code. Nothing is stored until [`Self::totp_confirm`] sees a correct code; a
    /// second call starts again with a new secret. Refused if one is enrolled already (an
    /// approver resets it first, [`Self::totp_reset`]).
    pub fn totp_begin(&self, actor: &Account) -> Result<TotpEnrolment, AdminError> {
        let a = self
            .stored(&actor.name)?
            .filter(|a| !a.disabled)
            .ok_or_else(|| AdminError::NotFound(format!("no account {:?}", actor.name)))?;
        if a.totp.is_some() {
            return Err(AdminError::Conflict(format!(
                "{} has an authenticator already: an approver resets it before another is enrolled",
                a.name
            )));
        }
        let secret = totp::new_secret();
        let enrolment = totp::enrolment(&secret, &a.name)?;
        guard(&self.signin.pending).insert(
            a.name,
            Pending {
                secret,
                started: self.now(),
            },
        );
        Ok(enrolment)
    }

    /// Finishes `actor`'s enrolment with a code from the new authenticator: stored (sealed)
    /// only if the code is right. Audited.
    pub fn totp_confirm(&self, actor: &Account, code: &str) -> Result<Account, AdminError> {
        let now = self.now();
        let secret = {
            let mut p = guard(&self.signin.pending);
            p.retain(|_, e| now.duration_since(e.started) < ENROLMENT_WAIT);
            p.get(&actor.name).map(|e| e.secret.clone())
        }
        .ok_or_else(|| {
            AdminError::Conflict(
                "no authenticator is being set up (or it took over 10 minutes): start again".into(),
            )
        })?;
        let secs = u64::try_from(now.as_second()).unwrap_or(0);
        let step = totp::verify(&secret, &actor.name, code, secs, None)?.ok_or_else(|| {
            AdminError::Invalid(
                "that code is not right for the new authenticator: type the code it shows now (and check the phone's clock)"
                    .into(),
            )
        })?;
        let sealed = self.secrets_key()?.seal(&actor.name, &secret)?;
        let view = {
            let _w = self.lock();
            let mut a = self
                .stored(&actor.name)?
                .filter(|a| !a.disabled)
                .ok_or_else(|| AdminError::NotFound(format!("no account {:?}", actor.name)))?;
            if a.totp.is_some() {
                return Err(AdminError::Conflict(format!(
                    "{} has an authenticator already",
                    a.name
                )));
            }
            a.totp = Some(StoredTotp {
                sealed,
                last_step: step,
                enrolled: now,
            });
            self.put_account(&a)?;
            a.view()
        };
        guard(&self.signin.pending).remove(&actor.name);
        self.audit(
            &actor.name,
            "totp-enrol",
            json(serde_json::json!({ "account": actor.name })),
        )?;
        Ok(view)
    }

    /// Exchanges an enrolment-only session whose account has now enrolled TOTP for a full
    /// session (a new token; the old one ends), so the person need not sign in again.
    pub fn finish_enrolment(&self, token: &str) -> Result<Session, AdminError> {
        let hash = accounts::token_hash(token.trim());
        let now = self.now();
        let name = {
            let s = guard(&self.signin.sessions);
            s.get(&hash)
                .filter(|l| l.alive(now) && l.scope == Scope::TotpEnrolment)
                .map(|l| l.account.clone())
        }
        .ok_or_else(|| {
            AdminError::Unauthenticated("the enrolment session is unknown or expired".into())
        })?;
        let a = self
            .stored(&name)?
            .filter(|a| !a.disabled)
            .ok_or_else(|| AdminError::Unauthenticated("the account is disabled".into()))?;
        if a.totp.is_none() {
            return Err(AdminError::Forbidden("enrol an authenticator first".into()));
        }
        guard(&self.signin.sessions).remove(&hash);
        let session = self.session(&a, Scope::Full, self.idle_timeout());
        self.audit(
            &a.name,
            "login",
            json(serde_json::json!({ "account": a.name, "via": "console",
                "totp": true, "scope": Scope::Full, "after": "totp-enrol" })),
        )?;
        Ok(session)
    }

    /// Removes `name`'s authenticator (a lost phone), as an approver: its sessions end, and
    /// the console makes it enrol a new one at the next sign-in. Audited.
    pub fn totp_reset(&self, approver: &Account, name: &str) -> Result<Account, AdminError> {
        approver.authorize(Permission::ManageAccounts)?;
        let view = {
            let _w = self.lock();
            let mut a = self
                .stored(name)?
                .ok_or_else(|| AdminError::NotFound(format!("no account {name:?}")))?;
            if a.totp.is_none() {
                return Err(AdminError::Conflict(format!(
                    "{name} has no authenticator to reset"
                )));
            }
            a.totp = None;
            self.put_account(&a)?;
            a.view()
        };
        self.signin.end_sessions(name);
        guard(&self.signin.pending).remove(name);
        self.audit(
            &approver.name,
            "totp-reset",
            json(serde_json::json!({ "account": name })),
        )?;
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    /// A clock the test moves.
    struct TestClock(Mutex<Timestamp>);

    impl hedgerow_model::Clock for TestClock {
        fn now(&self) -> Timestamp {
            *guard(&self.0)
        }
    }

    struct T {
        admin: Admin,
        clock: Arc<TestClock>,
        _dir: tempfile::TempDir,
    }

    impl T {
        fn advance(&self, d: SignedDuration) {
            let mut t = guard(&self.clock.0);
            *t += d;
        }
        fn secs(&self) -> u64 {
            u64::try_from(self.admin.now().as_second()).unwrap()
        }
        fn audit(&self) -> Vec<(String, String, String)> {
            self.admin
                .store()
                .audit()
                .unwrap()
                .into_iter()
                .map(|e| (e.actor, e.action, e.detail))
                .collect()
        }
        fn actions(&self, action: &str) -> Vec<String> {
            self.audit()
                .into_iter()
                .filter(|(_, a, _)| a == action)
                .map(|(_, _, d)| d)
                .collect()
        }
    }

    const PW: &str = "correct horse battery";
    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    const AWAY: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99));

    /// An appliance's change control with a first approver `boss` and `tech`, `gov`, each
    /// with the password [`PW`], at a time in the middle of a TOTP step.
    fn setup() -> T {
        let dir = tempfile::tempdir().unwrap();
        let store = hedgerow_store::Store::open(
            &dir.path().join("store"),
            &hedgerow_store::StoreOptions::default(),
        )
        .unwrap();
        let at: Timestamp = "2026-12-01T10:00:05Z".parse().unwrap();
        let clock = Arc::new(TestClock(Mutex::new(at)));
        let admin = Admin::new(
            Arc::new(store),
            &dir.path().join("hedgerow.toml"),
            Arc::new(|| Ok("ok".into())),
            clock.clone(),
        );
        let boss = admin
            .add_account(None, "boss", BTreeSet::from([Role::Approver]), Some(PW))
            .unwrap();
        for (name, role) in [("tech", Role::Technician), ("gov", Role::Governor)] {
            admin
                .add_account(Some(&boss), name, BTreeSet::from([role]), Some(PW))
                .unwrap();
        }
        T {
            admin,
            clock,
            _dir: dir,
        }
    }

    fn view(a: &Admin, name: &str) -> Account {
        a.stored(name).unwrap().unwrap().view()
    }

    fn full(s: Result<SignIn, AdminError>) -> Session {
        match s.unwrap() {
            SignIn::SignedIn(s) => s,
            SignIn::EnrolTotp(_) => panic!("asked to enrol"),
        }
    }

    /// Enrols `name` through the console: its secret.
    fn enrol(t: &T, name: &str) -> Vec<u8> {
        let SignIn::EnrolTotp(s) = t.admin.sign_in(name, PW, None, HOME).unwrap() else {
            panic!("{name} was not asked to enrol");
        };
        let who = t.admin.authenticate_enrolment(&s.token).unwrap();
        let e = t.admin.totp_begin(&who).unwrap();
        let secret = base32::decode(
            base32::Alphabet::Rfc4648 { padding: false },
            &e.secret_base32,
        )
        .unwrap();
        let code = totp::code_at(&secret, t.secs());
        assert!(t.admin.totp_confirm(&who, &code).unwrap().totp_enrolled);
        secret
    }

    #[test]
    fn five_failures_lock_an_account_for_fifteen_minutes_known_or_not() {
        let t = setup();
        let a = &t.admin;
        for i in 1..=ACCOUNT_FAILURES {
            let e = a.sign_in("gov", "wrong password!", None, HOME).unwrap_err();
            assert!(matches!(e, AdminError::Unauthenticated(_)), "try {i}: {e}");
            let e = a
                .sign_in("ghost", "wrong password!", None, HOME)
                .unwrap_err();
            assert!(matches!(e, AdminError::Unauthenticated(_)), "try {i}: {e}");
        }
        // Locked: even the right password, from anywhere; an unknown name alike.
        let e = a.sign_in("gov", PW, None, AWAY).unwrap_err();
        assert!(matches!(e, AdminError::Locked(_)), "{e}");
        assert_eq!(e.kind(), "locked");
        assert!(e.to_string().contains("10:15:05"), "{e}");
        assert!(matches!(
            a.sign_in("ghost", PW, None, AWAY),
            Err(AdminError::Locked(_))
        ));
        assert!(matches!(a.login("gov", PW), Err(AdminError::Locked(_))));
        // Another account from the same address is not locked.
        let boss = a.api_login("boss", PW, None, LOCAL).unwrap();
        assert_eq!(boss.account.name, "boss");
        // Still locked a second before the end; free after.
        t.advance(LOCKOUT - SignedDuration::from_secs(1));
        assert!(matches!(
            a.sign_in("gov", PW, None, HOME),
            Err(AdminError::Locked(_))
        ));
        t.advance(SignedDuration::from_secs(1));
        assert_eq!(full(a.sign_in("gov", PW, None, HOME)).account.name, "gov");
        // Audited: each failure and the lockout, and never the password.
        assert_eq!(t.actions("login-failed").len(), 10);
        let locks = t.actions("lockout");
        assert_eq!(locks.len(), 2, "{locks:?}");
        assert!(locks[0].contains("\"gov\"") && locks[1].contains("\"ghost\""));
        assert!(
            t.audit()
                .iter()
                .all(|(_, _, d)| !d.contains("wrong password") && !d.contains(PW))
        );
    }

    #[test]
    fn a_success_ends_the_run_of_failures() {
        let t = setup();
        let a = &t.admin;
        for _ in 0..ACCOUNT_FAILURES - 1 {
            assert!(a.sign_in("gov", "nope nope nope", None, HOME).is_err());
        }
        full(a.sign_in("gov", PW, None, HOME));
        for _ in 0..ACCOUNT_FAILURES - 1 {
            assert!(a.sign_in("gov", "nope nope nope", None, HOME).is_err());
        }
        full(a.sign_in("gov", PW, None, HOME));
        assert!(t.actions("lockout").is_empty());
    }

    #[test]
    fn twenty_failures_from_one_address_lock_it_out() {
        let t = setup();
        let a = &t.admin;
        for i in 0..SOURCE_FAILURES {
            // Different names, so no account is locked.
            let e = a
                .sign_in(&format!("guess{i}"), "nope nope nope", None, AWAY)
                .unwrap_err();
            assert!(matches!(e, AdminError::Unauthenticated(_)), "{i}: {e}");
        }
        assert!(matches!(
            a.sign_in("gov", PW, None, AWAY),
            Err(AdminError::Locked(_))
        ));
        // Other addresses are not.
        full(a.sign_in("gov", PW, None, HOME));
        t.advance(LOCKOUT);
        full(a.sign_in("gov", PW, None, AWAY));
        assert!(t.actions("lockout")[0].contains("192.0.2.99"));
    }

    #[test]
    fn failures_spread_over_more_than_the_window_do_not_lock_an_address() {
        let t = setup();
        for i in 0..SOURCE_FAILURES * 2 {
            let e = t
                .admin
                .sign_in(&format!("g{i}"), "nope nope nope", None, AWAY)
                .unwrap_err();
            assert!(matches!(e, AdminError::Unauthenticated(_)), "{i}: {e}");
            t.advance(SignedDuration::from_mins(1));
        }
    }

    #[test]
    fn the_console_makes_totp_roles_enrol_first_and_the_api_does_not() {
        let t = setup();
        let a = &t.admin;
        // A governor needs no TOTP.
        assert!(!needs_totp(&view(a, "gov")));
        assert!(needs_totp(&view(a, "tech")));
        full(a.sign_in("gov", PW, None, HOME));
        // On the appliance's own socket the API still signs a technician in with a password
        // alone; over the network it does not until an authenticator is set up.
        let api = a.api_login("tech", PW, None, LOCAL).unwrap();
        assert_eq!(api.scope, Scope::Full);
        assert!(a.authenticate(&api.token).is_ok());
        assert!(matches!(
            a.api_login("tech", PW, None, HOME),
            Err(AdminError::Forbidden(_))
        ));
        // The console gives an enrolment-only session.
        let SignIn::EnrolTotp(s) = a.sign_in("tech", PW, None, HOME).unwrap() else {
            panic!("not asked to enrol");
        };
        assert_eq!(s.scope, Scope::TotpEnrolment);
        assert!(matches!(
            a.authenticate(&s.token),
            Err(AdminError::Forbidden(_))
        ));
        let who = a.authenticate_enrolment(&s.token).unwrap();
        assert!(matches!(
            a.finish_enrolment(&s.token),
            Err(AdminError::Forbidden(_))
        ));
        let e = a.totp_begin(&who).unwrap();
        assert!(e.qr_svg.starts_with("<svg"));
        let secret = base32::decode(
            base32::Alphabet::Rfc4648 { padding: false },
            &e.secret_base32,
        )
        .unwrap();
        // A wrong code stores nothing.
        let wrong = totp::code_at(&secret, t.secs() + 300);
        assert!(matches!(
            a.totp_confirm(&who, &wrong),
            Err(AdminError::Invalid(_))
        ));
        assert!(!view(a, "tech").totp_enrolled);
        let right = totp::code_at(&secret, t.secs());
        assert!(a.totp_confirm(&who, &right).unwrap().totp_enrolled);
        assert!(matches!(a.totp_begin(&who), Err(AdminError::Conflict(_))));
        // The enrolment session becomes a full one, with a new token.
        let s2 = a.finish_enrolment(&s.token).unwrap();
        assert_eq!(s2.scope, Scope::Full);
        assert_ne!(s2.token, s.token);
        assert!(a.authenticate(&s2.token).is_ok());
        assert!(a.authenticate_enrolment(&s.token).is_err());
        assert_eq!(t.actions("totp-enrol").len(), 1);
        // Enrolled: a password alone no longer signs in, on the API either.
        assert!(matches!(
            a.api_login("tech", PW, None, HOME),
            Err(AdminError::Unauthenticated(_))
        ));
        // API tokens (scripts) do not enrol.
        let boss = view(a, "boss");
        let tok = a.new_api_token(&boss, "boss").unwrap();
        assert!(a.authenticate(&tok).is_ok());
        assert!(a.authenticate_enrolment(&tok).is_err());
    }

    #[test]
    fn codes_allow_one_step_of_skew_and_never_replay() {
        let t = setup();
        let a = &t.admin;
        let secret = enrol(&t, "tech");
        let step = t.secs() / totp::STEP;
        let code = |s: u64| totp::code_at(&secret, s * totp::STEP);
        // The code confirmed at enrolment is used up.
        assert!(a.sign_in("tech", PW, Some(&code(step)), HOME).is_err());
        // The next step's (a phone a little ahead) is fine, once.
        full(a.sign_in("tech", PW, Some(&code(step + 1)), HOME));
        assert!(a.sign_in("tech", PW, Some(&code(step + 1)), HOME).is_err());
        // Three steps on: the previous step's code (a phone a little behind) is fine, two
        // steps ahead is not.
        t.advance(SignedDuration::from_secs(90));
        assert!(a.sign_in("tech", PW, Some(&code(step + 5)), HOME).is_err());
        full(a.sign_in("tech", PW, Some(&code(step + 2)), HOME));
        // The right code with the wrong password is refused and not used up.
        assert!(
            a.sign_in("tech", "wrong wrong wrong", Some(&code(step + 3)), HOME)
                .is_err()
        );
        let s = a
            .api_login("tech", PW, Some(&code(step + 3)), HOME)
            .unwrap();
        assert_eq!(s.account.name, "tech");
        assert!(s.account.totp_enrolled);
        assert!(a.sign_in("tech", PW, Some("000000"), HOME).is_err());
        assert!(a.sign_in("tech", PW, Some("not a code"), HOME).is_err());
        // No code in the audit log.
        let audit = t.audit();
        for s in step - 1..step + 6 {
            assert!(audit.iter().all(|(_, _, d)| !d.contains(&code(s))));
        }
    }

    #[test]
    fn sessions_end_when_idle_after_eight_hours_or_on_sign_out() {
        let t = setup();
        let a = &t.admin;
        let s = full(a.sign_in("gov", PW, None, HOME));
        assert_eq!(s.idle_timeout, DEFAULT_IDLE);
        // Each use keeps it alive for another idle timeout.
        for _ in 0..3 {
            t.advance(SignedDuration::from_mins(29));
            assert!(a.authenticate(&s.token).is_ok());
        }
        t.advance(SignedDuration::from_mins(30));
        assert!(matches!(
            a.authenticate(&s.token),
            Err(AdminError::Unauthenticated(_))
        ));
        // Used every 20 minutes it still ends after 8 hours.
        let s = full(a.sign_in("gov", PW, None, HOME));
        for _ in 0..23 {
            t.advance(SignedDuration::from_mins(20));
            assert!(a.authenticate(&s.token).is_ok());
        }
        t.advance(SignedDuration::from_mins(20));
        assert!(a.authenticate(&s.token).is_err());
        // Every sign-in gets a new token; signing out ends just that one.
        let one = full(a.sign_in("gov", PW, None, HOME));
        let two = full(a.sign_in("gov", PW, None, HOME));
        assert_ne!(one.token, two.token);
        a.sign_out(&one.token).unwrap();
        assert!(a.authenticate(&one.token).is_err());
        assert!(a.authenticate(&two.token).is_ok());
        a.sign_out(&one.token).unwrap();
        assert_eq!(t.actions("logout").len(), 1);
    }

    #[test]
    fn an_idle_timeout_set_in_the_configuration_is_used() {
        let t = setup();
        let dir = t.admin.config_path().parent().unwrap().to_owned();
        std::fs::write(dir.join("a.txt"), "adult.example\n").unwrap();
        std::fs::write(dir.join("iwf.txt"), "bad.example/x\n").unwrap();
        std::fs::write(
            t.admin.config_path(),
            "[server]\nstate_dir = \"state\"\n\n[dns]\nlisten = [\"127.0.0.1:0\"]\n\
             upstreams = [{ address = \"127.0.0.1:9\" }]\nblockpage_ipv4 = \"192.0.2.80\"\n\n\
             [lists.adult]\npath = \"a.txt\"\nformat = \"domains\"\ncategory = \"adult\"\n\n\
             [groups.ks2]\nnetworks = [\"10.20.0.0/16\"]\nblock_categories = [\"adult\"]\n\
             safesearch = \"on\"\nyoutube = \"strict\"\n\n\
             [lists.iwf]\npath = \"iwf.txt\"\nformat = \"urls\"\nkind = \"illegal\"\n\
             category = \"child-abuse\"\n\n[console]\nlisten = \"127.0.0.1:0\"\nidle_timeout = \"10m\"\n",
        )
        .unwrap();
        if let Err(e) = hedgerow_config::load(t.admin.config_path()) {
            panic!("{e}");
        }
        let s = full(t.admin.sign_in("gov", PW, None, HOME));
        assert_eq!(s.idle_timeout, SignedDuration::from_mins(10));
        t.advance(SignedDuration::from_mins(10));
        assert!(t.admin.authenticate(&s.token).is_err());
    }

    #[test]
    fn reauthentication_checks_password_and_code_and_locks() {
        let t = setup();
        let a = &t.admin;
        let gov = view(a, "gov");
        a.reauthenticate(&gov, PW, None).unwrap();
        assert!(matches!(
            a.reauthenticate(&gov, "not the password", None),
            Err(AdminError::Unauthenticated(_))
        ));
        let secret = enrol(&t, "tech");
        let tech = view(a, "tech");
        let step = t.secs() / totp::STEP;
        let session = full(a.sign_in(
            "tech",
            PW,
            Some(&totp::code_at(&secret, (step + 1) * totp::STEP)),
            HOME,
        ));
        t.advance(SignedDuration::from_secs(60));
        let now = t.secs();
        // With TOTP, the password alone is not enough.
        assert!(a.reauthenticate(&tech, PW, None).is_err());
        a.reauthenticate(&tech, PW, Some(&totp::code_at(&secret, now)))
            .unwrap();
        assert_eq!(t.actions("reauth").len(), 2);
        // Five wrong: locked, and the account's sessions end.
        for _ in 0..ACCOUNT_FAILURES {
            assert!(a.reauthenticate(&tech, "guess guess guess", None).is_err());
        }
        assert!(matches!(
            a.reauthenticate(&tech, PW, Some(&totp::code_at(&secret, now + 30))),
            Err(AdminError::Locked(_))
        ));
        assert!(a.authenticate(&session.token).is_err());
        assert_eq!(t.actions("reauth-failed").len(), 7);
    }

    #[test]
    fn an_approver_resets_a_lost_authenticator() {
        let t = setup();
        let a = &t.admin;
        enrol(&t, "tech");
        let tech = view(a, "tech");
        let boss = view(a, "boss");
        let s = a.api_login("gov", PW, None, HOME).unwrap();
        assert!(matches!(
            a.totp_reset(&tech, "tech"),
            Err(AdminError::Forbidden(_))
        ));
        assert!(matches!(
            a.totp_reset(&boss, "gov"),
            Err(AdminError::Conflict(_))
        ));
        assert!(!a.totp_reset(&boss, "tech").unwrap().totp_enrolled);
        assert!(a.authenticate(&s.token).is_ok(), "only tech's sessions end");
        let reset = t.actions("totp-reset");
        assert_eq!(reset.len(), 1);
        assert!(reset[0].contains("tech"));
        // Asked to enrol again at the next console sign-in.
        assert!(matches!(
            a.sign_in("tech", PW, None, HOME).unwrap(),
            SignIn::EnrolTotp(_)
        ));
    }

    #[test]
    fn the_secret_is_never_in_clear_in_the_store_or_its_export() {
        let t = setup();
        let secret = enrol(&t, "tech");
        let b32 = base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &secret);
        let hex = accounts::hex(&secret);
        let mut export = Vec::new();
        t.admin.store().export(&mut export).unwrap();
        // Admin records are exported as hex: read them as they were written.
        let mut text = String::from_utf8_lossy(&export).into_owned();
        for line in String::from_utf8_lossy(&export).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["kind"] == "admin" {
                let raw = totp::tests_unhex(v["value"].as_str().unwrap());
                text.push_str(&String::from_utf8_lossy(&raw));
            }
        }
        assert!(
            text.contains("\"sealed\":\"x1:"),
            "the account is in the export"
        );
        for clear in [&b32, &hex] {
            assert!(!text.contains(clear.as_str()));
            assert!(
                t.audit()
                    .iter()
                    .all(|(_, _, d)| !d.contains(clear.as_str()))
            );
        }
        let key = t
            .admin
            .store()
            .path()
            .parent()
            .unwrap()
            .join(totp::SECRETS_KEY);
        assert!(Path::new(&key).exists());
    }
}
