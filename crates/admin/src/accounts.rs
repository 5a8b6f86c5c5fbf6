//! Accounts, roles, passwords (argon2), API tokens and sessions (SHA-256 of a random token),
//! and the one table that says which role may do what ([`Permission::roles`]).

use std::collections::BTreeSet;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AdminError;

/// A role an account holds. A person may hold several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Proposes changes; applies tightening changes and approved ones.
    Technician,
    /// The Designated Safeguarding Lead: co-signs high-risk changes.
    Dsl,
    /// A deputy DSL: may co-sign as the DSL does.
    DeputyDsl,
    /// A senior leader: approves loosening changes and manages accounts.
    Approver,
    /// Read-only: change requests and the audit log, never pupil-level data.
    Governor,
    /// A member of staff without filter duties: reports unsuitable sites to the DSL and
    /// sees how their own reports went. (Last: roles are stored by name, listed in this
    /// order.)
    Staff,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Technician,
        Role::Dsl,
        Role::DeputyDsl,
        Role::Approver,
        Role::Governor,
        Role::Staff,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Technician => "technician",
            Role::Dsl => "dsl",
            Role::DeputyDsl => "deputy-dsl",
            Role::Approver => "approver",
            Role::Governor => "governor",
            Role::Staff => "staff",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = AdminError;
    fn from_str(s: &str) -> Result<Self, AdminError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                AdminError::Invalid(format!(
                    "unknown role {s:?}: expected technician, dsl, deputy-dsl, approver, governor or staff"
                ))
            })
    }
}

/// Something an account may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Add accounts, change their roles, disable them.
    ManageAccounts,
    /// Propose a change request, or revert a change.
    Propose,
    /// Approve or reject a loosening change (never one's own).
    Approve,
    /// Co-sign a high-risk change as the DSL.
    CoSign,
    /// Apply a change that its rules allow to be applied.
    Apply,
    /// Read change requests, accounts and the audit log.
    Read,
    /// Ask the running appliance to reload its configuration.
    Reload,
    /// Read pupil-level records: access events and breaches, and export the whole store.
    PupilData,
    /// Read and decide review requests from the block page (they name a device and a user).
    Reviews,
    /// Report an unsuitable site to the DSL, and follow one's own reports: every role.
    ReportSite,
    /// Read the reports (dashboard, trends, the weekly monitoring report): counts only,
    /// nobody named.
    Reports,
    /// See which sites were blocked most in the reports (site names, not who visited them).
    ReportSites,
    /// Read the system status: listeners, upstreams, lists, the store, dropped events.
    SystemStatus,
}

impl Permission {
    /// The roles that grant it: the one place authorisation is decided.
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Permission::ManageAccounts => &[Approver],
            Permission::Propose => &[Technician, Approver, Dsl, DeputyDsl],
            Permission::Approve => &[Approver],
            Permission::CoSign => &[Dsl, DeputyDsl],
            Permission::Apply => &[Technician, Approver],
            Permission::Read => &[Technician, Approver, Dsl, DeputyDsl, Governor],
            Permission::Reload => &[Technician, Approver],
            Permission::PupilData => &[Dsl, DeputyDsl],
            Permission::Reviews => &[Technician, Approver, Dsl, DeputyDsl],
            Permission::ReportSite => &[Technician, Dsl, DeputyDsl, Approver, Governor, Staff],
            Permission::Reports => &[Dsl, DeputyDsl, Approver, Governor],
            Permission::ReportSites => &[Dsl, DeputyDsl, Approver],
            Permission::SystemStatus => &[Technician, Approver],
        }
    }
}

/// An account as stored (format 1, JSON). Secrets are hashes only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredAccount {
    pub(crate) name: String,
    pub(crate) roles: BTreeSet<Role>,
    /// argon2 PHC string.
    pub(crate) password: Option<String>,
    /// Hex SHA-256 of each API token.
    pub(crate) tokens: Vec<String>,
    pub(crate) disabled: bool,
    pub(crate) created: jiff::Timestamp,
    /// The TOTP authenticator, its secret sealed (`totp.rs`); none until one is enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) totp: Option<crate::totp::StoredTotp>,
}

/// An account as shown: no secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    pub roles: BTreeSet<Role>,
    pub disabled: bool,
    pub created: jiff::Timestamp,
    pub has_password: bool,
    pub tokens: usize,
    /// Whether a TOTP authenticator is enrolled (the second factor at sign-in).
    #[serde(default)]
    pub totp_enrolled: bool,
}

impl StoredAccount {
    pub(crate) fn view(&self) -> Account {
        Account {
            name: self.name.clone(),
            roles: self.roles.clone(),
            disabled: self.disabled,
            created: self.created,
            has_password: self.password.is_some(),
            tokens: self.tokens.len(),
            totp_enrolled: self.totp.is_some(),
        }
    }
}

impl Account {
    pub fn may(&self, p: Permission) -> bool {
        !self.disabled && p.roles().iter().any(|r| self.roles.contains(r))
    }

    /// Refuses unless one of the account's roles grants `p`.
    pub fn authorize(&self, p: Permission) -> Result<(), AdminError> {
        if self.may(p) {
            return Ok(());
        }
        let needs: Vec<&str> = p.roles().iter().map(|r| r.as_str()).collect();
        Err(AdminError::Forbidden(format!(
            "{} may not do this: it needs the role {}",
            self.name,
            needs.join(" or ")
        )))
    }
}

pub(crate) fn valid_name(name: &str) -> Result<(), AdminError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && name != "hedgerow";
    if ok {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "account name {name:?}: 1-64 of a-z, A-Z, 0-9, '.', '-', '_' (and not \"hedgerow\", the appliance's own name)"
        )))
    }
}

pub(crate) fn hash_password(password: &str) -> Result<String, AdminError> {
    if password.chars().count() < 10 {
        return Err(AdminError::Invalid(
            "a password needs at least 10 characters".into(),
        ));
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| AdminError::Internal(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AdminError::Internal(format!("password hash: {e}")))
}

pub(crate) fn check_password(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A new random token (`hrw_` and 64 hex digits) and its hash.
pub(crate) fn new_token() -> (String, String) {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = format!("hrw_{}", hex(&raw));
    let hash = token_hash(&token);
    (token, hash)
}

pub(crate) fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn account(roles: &[Role]) -> Account {
        Account {
            name: "a".into(),
            roles: roles.iter().copied().collect(),
            disabled: false,
            created: jiff::Timestamp::UNIX_EPOCH,
            has_password: true,
            tokens: 0,
            totp_enrolled: false,
        }
    }

    #[test]
    fn roles_grant_what_the_table_says() {
        let tech = account(&[Role::Technician]);
        assert!(tech.authorize(Permission::Propose).is_ok());
        assert!(tech.authorize(Permission::Approve).is_err());
        assert!(tech.authorize(Permission::Reload).is_ok());
        assert!(tech.authorize(Permission::PupilData).is_err());
        let gov = account(&[Role::Governor]);
        assert!(gov.authorize(Permission::Read).is_ok());
        assert!(gov.authorize(Permission::Propose).is_err());
        // Governors never get pupil-level data.
        assert!(gov.authorize(Permission::PupilData).is_err());
        assert!(gov.authorize(Permission::Reviews).is_err());
        assert!(
            account(&[Role::DeputyDsl])
                .authorize(Permission::PupilData)
                .is_ok()
        );
        // Staff report sites and do nothing else.
        let staff = account(&[Role::Staff]);
        assert!(staff.authorize(Permission::ReportSite).is_ok());
        for p in [
            Permission::Read,
            Permission::Propose,
            Permission::PupilData,
            Permission::Reviews,
            Permission::Approve,
        ] {
            assert!(staff.authorize(p).is_err(), "{p:?}");
        }
        for r in Role::ALL {
            assert!(
                account(&[r]).authorize(Permission::ReportSite).is_ok(),
                "{r:?}"
            );
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        let both = account(&[Role::Technician, Role::Approver]);
        assert!(both.authorize(Permission::Approve).is_ok());
        let mut off = both;
        off.disabled = true;
        assert!(off.authorize(Permission::Read).is_err());
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(check_password(&h, "correct horse battery"));
        assert!(!check_password(&h, "correct horse battery!"));
        assert!(hash_password("short").is_err());
    }
}
