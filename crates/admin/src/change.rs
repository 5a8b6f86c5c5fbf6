//! Change requests: what they carry and the rules for approving them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::accounts::{Account, Role};
use crate::edit::{Direction, Edit};

/// Safeguarding risk, as the proposer rates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Risk {
    Low,
    Medium,
    High,
}

/// The structured risk assessment a change carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskAssessment {
    /// Groups affected (filled in from the edits when left empty).
    #[serde(default)]
    pub groups: Vec<String>,
    pub risk: Risk,
    /// Why the risk is what it is.
    pub justification: String,
    #[serde(default)]
    pub benefit: String,
    #[serde(default)]
    pub mitigations: String,
    /// A time-limited exception: reverted by itself at this time.
    #[serde(default)]
    pub expires: Option<jiff::Timestamp>,
}

/// What a proposer sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    pub reason: String,
    pub risk: RiskAssessment,
    pub edits: Vec<Edit>,
    /// Hosts or URLs whose verdicts to show in the preview, besides those the edits name.
    #[serde(default)]
    pub check: Vec<String>,
}

/// Where a change request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Waiting for approval (or, for a tightening change, to be applied).
    Proposed,
    /// Every approval it needs is there; waiting to be applied.
    Approved,
    Rejected,
    Applied,
    /// Applying it failed (validation or reload); no file was changed.
    Failed,
    /// Applied, then undone by a later change (`reverted_by`).
    Reverted,
    /// A hand edit found at a reload or start, waiting for an approver or the DSL to
    /// acknowledge it.
    Unreviewed,
    /// A hand edit that an approver or the DSL has seen.
    Acknowledged,
}

/// How the change came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Proposal,
    /// Undoes an earlier change (`reverts`).
    Revert,
    /// A time-limited exception's own revert at its expiry.
    Expiry,
    /// Files edited by hand outside the workflow.
    HandEdit,
}

/// One signature on a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub by: String,
    /// `approver`, `dsl`, or both, as this account signed.
    pub as_roles: Vec<Role>,
    pub time: jiff::Timestamp,
    #[serde(default)]
    pub note: String,
}

/// A verdict the change alters, for one group and one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictChange {
    pub group: String,
    pub target: String,
    pub before: String,
    pub after: String,
}

impl std::fmt::Display for VerdictChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} {} -> {}",
            self.group, self.target, self.before, self.after
        )
    }
}

/// What the change would do, computed before anyone approves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    /// Unified diff of every file it changes.
    pub diff: String,
    pub verdicts: Vec<VerdictChange>,
}

/// One file's content hash before and after an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHashes {
    pub path: PathBuf,
    pub before: String,
    pub after: String,
}

/// A change request, as stored (format 1, JSON) and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    pub id: u64,
    pub created: jiff::Timestamp,
    pub origin: Origin,
    pub proposer: String,
    pub reason: String,
    pub risk: RiskAssessment,
    pub edits: Vec<Edit>,
    pub direction: Direction,
    pub status: Status,
    pub preview: Preview,
    /// The roles whose signatures it needs before it may be applied.
    pub needs: Vec<Role>,
    pub signatures: Vec<Signature>,
    #[serde(default)]
    pub rejected: Option<Signature>,
    #[serde(default)]
    pub applied_by: Option<String>,
    #[serde(default)]
    pub applied_at: Option<jiff::Timestamp>,
    /// Content hashes of every file the application wrote.
    #[serde(default)]
    pub files: Vec<FileHashes>,
    /// The files' text before it was applied, to roll the whole configuration back to.
    #[serde(default)]
    pub before: BTreeMap<PathBuf, String>,
    /// The edits that undo it (none for a whole-file restore or a list removal).
    #[serde(default)]
    pub inverse: Option<Vec<Edit>>,
    #[serde(default)]
    pub reverts: Option<u64>,
    #[serde(default)]
    pub reverted_by: Option<u64>,
    /// Why it failed, when it did.
    #[serde(default)]
    pub failure: Option<String>,
}

impl ChangeRequest {
    /// The signatures a change needs, by the rules in `[change_control]`: by default a
    /// loosening one an approver's, a high-risk one the DSL's as well, a tightening one none
    /// (it is still recorded). Stricter rules may ask for approvers on tightening changes
    /// too, more than one approver, and the DSL from medium or low risk.
    pub(crate) fn required(
        direction: Direction,
        risk: Risk,
        rules: &hedgerow_config::ChangeControlConfig,
    ) -> Vec<Role> {
        use hedgerow_config::RiskLevel;
        let mut needs = Vec::new();
        if direction == Direction::Loosening || rules.approve_tightening {
            for _ in 0..rules.approvers.max(1) {
                needs.push(Role::Approver);
            }
        }
        let level = match risk {
            Risk::Low => RiskLevel::Low,
            Risk::Medium => RiskLevel::Medium,
            Risk::High => RiskLevel::High,
        };
        if level >= rules.dsl_cosign_from {
            needs.push(Role::Dsl);
        }
        needs
    }

    /// Roles still missing a signature: each role as many times as it is needed and not yet
    /// signed for (every signature is a different account's).
    pub fn missing(&self) -> Vec<Role> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for r in &self.needs {
            if seen.contains(r) {
                continue;
            }
            seen.push(*r);
            let needed = self.needs.iter().filter(|x| *x == r).count();
            let signed = self
                .signatures
                .iter()
                .filter(|s| s.as_roles.contains(r))
                .count();
            for _ in signed..needed {
                out.push(*r);
            }
        }
        out
    }

    /// The roles `account` would sign as on this change (never on its own proposal).
    pub(crate) fn signs_as(&self, account: &Account) -> Vec<Role> {
        let mut roles = Vec::new();
        if account.roles.contains(&Role::Approver) && self.needs.contains(&Role::Approver) {
            roles.push(Role::Approver);
        }
        if (account.roles.contains(&Role::Dsl) || account.roles.contains(&Role::DeputyDsl))
            && self.needs.contains(&Role::Dsl)
        {
            roles.push(Role::Dsl);
        }
        roles
    }
}
