//! TOTP second factors (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, one step of skew
//! either way) on the `totp-rs` crate, and how their secrets are kept.
//!
//! # Secrets at rest
//!
//! A TOTP secret has to be readable by the appliance (it computes the codes), so it cannot be
//! hashed like a password. It is sealed with XChaCha20-Poly1305 (`chacha20poly1305`) under a
//! 256-bit key kept in `STATE/secrets.key` (mode 0600, made on first use), with the account's
//! name as associated data, so a sealed secret moved onto another account does not open. The
//! key lives beside the store (`STATE/store`), never in it: the store's export (and a backup
//! of the store alone) carries only sealed secrets, and the audit log and the logs never see
//! them. Restoring an export onto another appliance therefore needs `STATE/secrets.key` copied
//! too, or each account's TOTP reset by an approver.
//!
//! # Replay
//!
//! A code is good for the step it belongs to, the one before or the one after. The step of
//! the last code accepted is stored with the account, and a code is accepted only for a later
//! step (RFC 6238 section 5.2: the verifier must not accept a second use of an OTP), so a code
//! seen over someone's shoulder cannot be used again, even after a restart.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, TOTP};

use crate::AdminError;

/// The issuer authenticator apps show beside the account's name.
pub(crate) const ISSUER: &str = "Hedgerow";
/// Seconds per step.
pub(crate) const STEP: u64 = 30;
const DIGITS: usize = 6;
/// 160-bit secrets, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
/// The key file's name in the state directory.
pub const SECRETS_KEY: &str = "secrets.key";

/// A TOTP authenticator being set up: what the person scans or types into their app. Shown
/// once, while enrolling; it is stored (sealed) only when [`crate::Admin::totp_confirm`] sees a
/// correct code.
#[derive(Debug, Clone, Serialize)]
pub struct TotpEnrolment {
    /// The secret in base32 (RFC 4648, no padding), for typing into an app by hand.
    pub secret_base32: String,
    /// The `otpauth://totp/Hedgerow:NAME?secret=…&issuer=Hedgerow` URL the QR code holds.
    pub otpauth_url: String,
    /// The QR code of `otpauth_url` as an inline SVG element (no XML declaration), ready to
    /// place in a page.
    pub qr_svg: String,
}

/// An account's enrolled authenticator, as stored with the account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredTotp {
    /// `x1:` and the hex of the 24-byte nonce and the sealed secret.
    pub(crate) sealed: String,
    /// The step of the last code accepted; a code is accepted only for a later step.
    pub(crate) last_step: u64,
    pub(crate) enrolled: jiff::Timestamp,
}

/// A new random secret.
pub(crate) fn new_secret() -> Vec<u8> {
    let mut s = vec![0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut s);
    s
}

fn totp(secret: &[u8], account: &str) -> Result<TOTP, AdminError> {
    // Skew 0 here: `verify` tries the steps either side itself, to learn which one matched.
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        0,
        STEP,
        secret.to_vec(),
        Some(ISSUER.to_owned()),
        account.to_owned(),
    )
    .map_err(|e| AdminError::Internal(format!("TOTP: {e}")))
}

/// What an authenticator app needs for `secret`: the base32 secret, the otpauth URL and its QR
/// code.
pub(crate) fn enrolment(secret: &[u8], account: &str) -> Result<TotpEnrolment, AdminError> {
    let t = totp(secret, account)?;
    let url = t.get_url();
    let qr = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| AdminError::Internal(format!("QR code: {e}")))?;
    let svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // Inline in HTML: no XML declaration, and a name for screen readers.
    let svg = svg
        .find("<svg")
        .map_or(svg.as_str(), |at| &svg[at..])
        .replacen(
            "<svg ",
            "<svg role=\"img\" aria-label=\"QR code to add this account to an authenticator app\" ",
            1,
        );
    Ok(TotpEnrolment {
        secret_base32: t.get_secret_base32(),
        otpauth_url: url,
        qr_svg: svg,
    })
}

/// The step `code` belongs to, if it is right for the step of `now` (seconds since the epoch)
/// or one either side and later than `after` (the last step accepted). Anything but six ASCII
/// digits (spaces ignored, as apps show `123 456`) is simply wrong.
pub(crate) fn verify(
    secret: &[u8],
    account: &str,
    code: &str,
    now: u64,
    after: Option<u64>,
) -> Result<Option<u64>, AdminError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let t = totp(secret, account)?;
    let step = now / STEP;
    // Every candidate is checked (constant-time, in totp-rs), whatever matched, so the time
    // taken does not say which step did.
    let mut found = None;
    for s in [step.saturating_sub(1), step, step + 1] {
        if t.check(&code, s * STEP) && after.is_none_or(|a| s > a) && found.is_none() {
            found = Some(s);
        }
    }
    Ok(found)
}

/// The key that seals TOTP secrets, from `STATE/secrets.key`.
pub(crate) struct SecretsKey(chacha20poly1305::Key);

impl SecretsKey {
    /// Reads the key at `path`, making it (32 random bytes, mode 0600) if there is none.
    pub(crate) fn load_or_create(path: &Path) -> Result<Self, AdminError> {
        let fail = |what: &str, e: std::io::Error| {
            AdminError::Internal(format!("{what} {}: {e}", path.display()))
        };
        let read = |path: &Path| -> Result<Self, AdminError> {
            let mut bytes = Vec::new();
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| fail("reading", e))?;
            if bytes.len() != 32 {
                return Err(AdminError::Internal(format!(
                    "{} holds {} bytes, not a 32-byte key: restore it, or move it away and reset every account's TOTP",
                    path.display(),
                    bytes.len()
                )));
            }
            Ok(Self(*chacha20poly1305::Key::from_slice(&bytes)))
        };
        if path.exists() {
            return read(path);
        }
        use std::os::unix::fs::OpenOptionsExt;
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp: PathBuf = dir.join(format!(".{SECRETS_KEY}.{}.tmp", std::process::id()));
        let made = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&key)?;
            f.sync_all()?;
            // A hard link fails if another process made the key meanwhile: theirs is kept.
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            std::fs::File::open(dir)?.sync_all()
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail("making", e));
        }
        tracing::info!("made {} (seals TOTP secrets)", path.display());
        read(path)
    }

    /// Seals `secret` for `account`.
    pub(crate) fn seal(&self, account: &str, secret: &[u8]) -> Result<String, AdminError> {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = XChaCha20Poly1305::new(&self.0)
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: account.as_bytes(),
                },
            )
            .map_err(|_| AdminError::Internal("sealing a TOTP secret failed".into()))?;
        let mut all = nonce.to_vec();
        all.extend_from_slice(&sealed);
        Ok(format!("x1:{}", crate::accounts::hex(&all)))
    }

    /// Opens what [`Self::seal`] sealed for `account`.
    pub(crate) fn open(&self, account: &str, sealed: &str) -> Result<Vec<u8>, AdminError> {
        let refused = || {
            AdminError::Internal(format!(
                "the TOTP secret of {account:?} does not open with {SECRETS_KEY} (was the state directory's key replaced?): an approver can reset the account's TOTP"
            ))
        };
        let bytes = sealed
            .strip_prefix("x1:")
            .and_then(unhex)
            .filter(|b| b.len() > 24)
            .ok_or_else(refused)?;
        let (nonce, body) = bytes.split_at(24);
        XChaCha20Poly1305::new(&self.0)
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: account.as_bytes(),
                },
            )
            .map_err(|_| refused())
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The code an authenticator app shows for `secret` at `now` (seconds since the epoch): for
/// tests.
#[cfg(test)]
pub(crate) fn code_at(secret: &[u8], now: u64) -> String {
    #[allow(clippy::unwrap_used)]
    totp(secret, "t").unwrap().generate(now)
}

#[cfg(test)]
pub(crate) fn tests_unhex(s: &str) -> Vec<u8> {
    unhex(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA-1, the last 6 of its 8 digits.
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(secret, t), code, "at {t}");
            assert_eq!(verify(secret, "a", code, t, None).unwrap(), Some(t / STEP));
        }
    }

    #[test]
    fn skew_is_one_step_either_way_and_replay_is_refused() {
        let secret = new_secret();
        let now = 1_800_000_015;
        let step = now / STEP;
        let code = |s: u64| code_at(&secret, s * STEP);
        assert_eq!(
            verify(&secret, "a", &code(step), now, None).unwrap(),
            Some(step)
        );
        assert_eq!(
            verify(&secret, "a", &code(step - 1), now, None).unwrap(),
            Some(step - 1)
        );
        assert_eq!(
            verify(&secret, "a", &code(step + 1), now, None).unwrap(),
            Some(step + 1)
        );
        assert_eq!(
            verify(&secret, "a", &code(step - 2), now, None).unwrap(),
            None
        );
        assert_eq!(
            verify(&secret, "a", &code(step + 2), now, None).unwrap(),
            None
        );
        // Used already (or a later step was): refused.
        assert_eq!(
            verify(&secret, "a", &code(step), now, Some(step)).unwrap(),
            None
        );
        assert_eq!(
            verify(&secret, "a", &code(step - 1), now, Some(step)).unwrap(),
            None
        );
        assert_eq!(
            verify(&secret, "a", &code(step + 1), now, Some(step)).unwrap(),
            Some(step + 1)
        );
        // Spaces as apps show them are fine; anything else is just wrong.
        let c = code(step);
        let spaced = format!("{} {}", &c[..3], &c[3..]);
        assert_eq!(
            verify(&secret, "a", &spaced, now, None).unwrap(),
            Some(step)
        );
        for bad in ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦"] {
            assert_eq!(
                verify(&secret, "a", bad, now, None).unwrap(),
                None,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn secrets_seal_and_open_only_for_their_account() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SECRETS_KEY);
        let key = SecretsKey::load_or_create(&path).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let secret = new_secret();
        let sealed = key.seal("alice", &secret).unwrap();
        assert!(!sealed.contains(&crate::accounts::hex(&secret)));
        assert_eq!(key.open("alice", &sealed).unwrap(), secret);
        assert!(key.open("bob", &sealed).is_err());
        // The same key is read back; a different key does not open it.
        let again = SecretsKey::load_or_create(&path).unwrap();
        assert_eq!(again.open("alice", &sealed).unwrap(), secret);
        let other = SecretsKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(other.open("alice", &sealed).is_err());
        std::fs::write(&path, b"short").unwrap();
        assert!(SecretsKey::load_or_create(&path).is_err());
    }

    #[test]
    fn enrolment_has_url_and_inline_svg() {
        let secret = new_secret();
        let e = enrolment(&secret, "alice").unwrap();
        assert!(
            e.otpauth_url
                .starts_with("otpauth://totp/Hedgerow:alice?secret=")
        );
        assert!(e.otpauth_url.contains("issuer=Hedgerow"));
        assert!(e.otpauth_url.contains(&e.secret_base32));
        assert!(
            e.qr_svg.starts_with("<svg role=\"img\""),
            "{}",
            &e.qr_svg[..60]
        );
        assert!(e.qr_svg.ends_with("</svg>"));
    }
}
