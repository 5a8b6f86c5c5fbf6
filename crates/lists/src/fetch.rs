//! One download of one list: the request (conditional, with credentials), the body (bounded),
//! the checks, and the staged file.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hedgerow_config::{Credentials, ListFetch, ListKind, ListSource};
use hedgerow_matcher::{ListSpec, MatcherBuilder};
use rustls::pki_types::pem::PemObject;
use sha2::Digest;

use crate::state;

/// How long a download may take in all, and how long the origin may stay silent.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(300);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Published hashes and signatures are small.
const SIDE_FILE_MAX: u64 = 64 * 1024;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The origin said the copy in force is current (304).
    NotModified,
    /// A new copy passed every check and waits in `NAME.new` for the next reload.
    Staged { entries: usize },
    /// The same bytes as the copy in force: nothing to reload.
    Unchanged { entries: usize },
}

/// Why a download was not accepted. The copy in force stays.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("{0}")]
    Setup(String),
    #[error("request failed: {0}")]
    Http(String),
    #[error("the origin answered {0}")]
    Status(u16),
    #[error("the body is larger than max_bytes ({0} bytes)")]
    TooLarge(u64),
    #[error("the body ended early: {0}")]
    Truncated(String),
    #[error("SHA-256 mismatch: published {published}, received {received}")]
    Sha256 { published: String, received: String },
    #[error("the minisign signature does not verify: {0}")]
    Signature(String),
    #[error("{0}")]
    Verify(String),
    #[error("cannot stage the list: {0}")]
    Io(#[from] std::io::Error),
}

/// Downloads `list` once and, if it passes every check, stages it. The list's status file is
/// updated with the outcome either way. `shrink_limit` is `[server] illegal_shrink_limit`.
pub async fn fetch_once(
    list: &ListSource,
    state_dir: &Path,
    shrink_limit: f64,
) -> Result<Attempt, FetchError> {
    let Some(fetch) = &list.fetch else {
        return Err(FetchError::Setup(format!(
            "list {:?} has no url",
            list.name
        )));
    };
    let started = jiff::Timestamp::now();
    let result = attempt(list, fetch, state_dir, shrink_limit).await;
    let now = jiff::Timestamp::now();
    let outcome = match &result {
        Ok(Attempt::NotModified) => "not-modified",
        Ok(Attempt::Staged { .. }) => "updated",
        Ok(Attempt::Unchanged { .. }) => "unchanged",
        Err(_) => "failed",
    };
    metrics::counter!("hedgerow_list_fetches_total", "list" => list.name.clone(), "result" => outcome)
        .increment(1);
    state::update(state_dir, &list.name, |s| {
        s.source = fetch.url.clone();
        s.attempted = Some(started);
        match &result {
            Ok(a) => {
                s.ok = true;
                s.refused_alerted = false;
                // A staged copy is confirmed current only once a reload puts it in force
                // (`Promotion::commit`): a copy the reload refuses must not hold off the
                // stale alert.
                if !matches!(a, Attempt::Staged { .. }) {
                    s.confirmed = Some(now);
                    s.stale_alerted = false;
                }
                s.result = match a {
                    Attempt::NotModified => "ok: not modified".into(),
                    Attempt::Unchanged { entries } => format!("ok: unchanged ({entries} entries)"),
                    Attempt::Staged { entries } => {
                        format!("ok: downloaded {entries} entries, staged for the next reload")
                    }
                };
            }
            Err(e) => {
                s.ok = false;
                s.result = format!("failed: {e}; the last good copy stays in force");
            }
        }
    });
    match &result {
        Ok(a) => tracing::info!(list = %list.name, "list download: {a:?}"),
        Err(e) => {
            tracing::warn!(list = %list.name, "list download failed, the last good copy stays in force: {e}")
        }
    }
    result
}

async fn attempt(
    list: &ListSource,
    fetch: &ListFetch,
    state_dir: &Path,
    shrink_limit: f64,
) -> Result<Attempt, FetchError> {
    let client = client(fetch).await?;
    let auth = credentials(fetch)?;
    let kept = state::status(state_dir, &list.name);
    let mut req = client.get(&fetch.url);
    if let Some(a) = &auth {
        req = req.header(reqwest::header::AUTHORIZATION, a.as_str());
    }
    // Conditional only when there is a copy to keep.
    if list.path.is_file() {
        if let Some(etag) = &kept.etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag.as_str());
        }
        if let Some(lm) = &kept.last_modified {
            req = req.header(reqwest::header::IF_MODIFIED_SINCE, lm.as_str());
        }
    }
    let resp = req.send().await.map_err(|e| FetchError::Http(chain(&e)))?;
    let code = resp.status();
    if code == reqwest::StatusCode::NOT_MODIFIED && list.path.is_file() {
        return Ok(Attempt::NotModified);
    }
    if !code.is_success() {
        return Err(FetchError::Status(code.as_u16()));
    }
    let header = |name: reqwest::header::HeaderName| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let etag = header(reqwest::header::ETAG);
    let last_modified = header(reqwest::header::LAST_MODIFIED);
    let body = read_body(resp, fetch.max_bytes).await?;
    let digest = hex(&sha2::Sha256::digest(&body));

    if let Some(url) = &fetch.sha256_url {
        let text = side_file(
            &client,
            url,
            same_host(url, &fetch.url)
                .then_some(&auth)
                .and_then(Option::as_ref),
        )
        .await?;
        let published = text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if published.len() != 64 || !published.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FetchError::Verify(format!(
                "{url} does not hold a SHA-256 (64 hex digits)"
            )));
        }
        if published != digest {
            return Err(FetchError::Sha256 {
                published,
                received: digest,
            });
        }
    }
    if let Some(key) = &fetch.minisign_key {
        let url = fetch
            .signature_url
            .clone()
            .unwrap_or_else(|| format!("{}.minisig", fetch.url));
        let text = side_file(
            &client,
            &url,
            same_host(&url, &fetch.url)
                .then_some(&auth)
                .and_then(Option::as_ref),
        )
        .await?;
        let pk = minisign_verify::PublicKey::from_base64(key.trim())
            .map_err(|e| FetchError::Signature(format!("minisign_key: {e}")))?;
        let sig = minisign_verify::Signature::decode(&text)
            .map_err(|e| FetchError::Signature(format!("{url}: {e}")))?;
        pk.verify(&body, &sig, false)
            .map_err(|e| FetchError::Signature(e.to_string()))?;
    }

    // Unchanged bytes (an origin without validators): confirmed current, nothing to reload.
    if kept.sha256.as_deref() == Some(digest.as_str()) && list.path.is_file() {
        let entries = kept.entries.unwrap_or_default();
        state::update(state_dir, &list.name, |s| {
            s.etag = etag.clone();
            s.last_modified = last_modified.clone();
        });
        return Ok(Attempt::Unchanged { entries });
    }

    // Parse it as the policy will, from a temporary file beside the staged one.
    let staged = state::staged_path(list);
    if let Some(dir) = staged.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp_name = staged.clone().into_os_string();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    drop(body);
    let checked = {
        let (list, tmp) = (list.clone(), tmp.clone());
        tokio::task::spawn_blocking(move || count_entries(&list, &tmp))
            .await
            .map_err(|e| FetchError::Verify(format!("parse task failed: {e}")))?
    };
    let entries = match checked {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let refuse = |why: String| {
        let _ = std::fs::remove_file(&tmp);
        Err(FetchError::Verify(why))
    };
    if entries < fetch.min_entries {
        return refuse(format!(
            "{entries} entries, fewer than min_entries ({})",
            fetch.min_entries
        ));
    }
    if list.kind == ListKind::Illegal && list.path.is_file() {
        // The guard in the policy would refuse it too; refusing here keeps the copy in force
        // the one on disk as well.
        let current = {
            let (list, path) = (list.clone(), list.path.clone());
            tokio::task::spawn_blocking(move || count_entries(&list, &path))
                .await
                .map_err(|e| FetchError::Verify(format!("parse task failed: {e}")))?
                .unwrap_or_default()
        };
        let floor = current as f64 * (1.0 - shrink_limit);
        if (entries as f64) < floor {
            return refuse(format!(
                "illegal-tier list shrank from {current} to {entries} entries, more than the {:.0}% allowed by illegal_shrink_limit",
                shrink_limit * 100.0
            ));
        }
    }
    std::fs::rename(&tmp, &staged)?;
    state::update(state_dir, &list.name, |s| {
        s.etag = etag;
        s.last_modified = last_modified;
        s.sha256 = Some(digest);
        s.entries = Some(entries);
        s.updated = Some(jiff::Timestamp::now());
    });
    Ok(Attempt::Staged { entries })
}

/// Entries in the list file at `path`, read as the policy reads it; refused when most lines
/// are not entries (an HTML error page served as 200, say).
fn count_entries(list: &ListSource, path: &Path) -> Result<usize, FetchError> {
    let spec = ListSpec {
        name: list.name.as_str().into(),
        kind: list.kind,
        format: list.format,
        category: list.category.clone(),
        url_match: list.url_match,
        severity: list.severity,
    };
    let report = MatcherBuilder::new()
        .add_file(spec, path)
        .map_err(|e| FetchError::Verify(format!("does not parse: {e}")))?;
    if report.bad_line_count > report.entries {
        return Err(FetchError::Verify(format!(
            "does not look like a {:?} list: {} bad lines, {} entries",
            list.format, report.bad_line_count, report.entries
        )));
    }
    Ok(report.entries)
}

async fn read_body(mut resp: reqwest::Response, max: u64) -> Result<Vec<u8>, FetchError> {
    if let Some(len) = resp.content_length()
        && len > max
    {
        return Err(FetchError::TooLarge(max));
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() as u64 + c.len() as u64 > max {
                    return Err(FetchError::TooLarge(max));
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(FetchError::Truncated(chain(&e))),
        }
    }
}

async fn side_file(
    client: &reqwest::Client,
    url: &str,
    auth: Option<&String>,
) -> Result<String, FetchError> {
    let mut req = client.get(url);
    if let Some(a) = auth {
        req = req.header(reqwest::header::AUTHORIZATION, a.as_str());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| FetchError::Http(format!("{url}: {}", chain(&e))))?;
    if !resp.status().is_success() {
        return Err(FetchError::Verify(format!(
            "{url}: the origin answered {}",
            resp.status().as_u16()
        )));
    }
    let body = read_body(resp, SIDE_FILE_MAX).await?;
    String::from_utf8(body).map_err(|_| FetchError::Verify(format!("{url}: not text")))
}

fn same_host(a: &str, b: &str) -> bool {
    let host = |u: &str| {
        reqwest::Url::parse(u)
            .ok()
            .map(|u| (u.host_str().map(str::to_owned), u.port_or_known_default()))
    };
    host(a).is_some() && host(a) == host(b)
}

/// The HTTPS client for one list: the Mozilla roots and the list's `ca_file`; https only,
/// redirects too; no proxy from the environment.
async fn client(fetch: &ListFetch) -> Result<reqwest::Client, FetchError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &fetch.ca_file {
        let pem = tokio::fs::read(path)
            .await
            .map_err(|e| FetchError::Setup(format!("ca_file {}: {e}", path.display())))?;
        let mut added = 0;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert =
                cert.map_err(|e| FetchError::Setup(format!("ca_file {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| FetchError::Setup(format!("ca_file {}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(FetchError::Setup(format!(
                "ca_file {}: no certificate in it",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Setup(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let redirects = reqwest::redirect::Policy::custom(|a| {
        if a.url().scheme() != "https" {
            a.error("redirected away from https")
        } else if a.previous().len() > 5 {
            a.error("too many redirects")
        } else {
            a.follow()
        }
    });
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(true)
        .no_proxy()
        .redirect(redirects)
        .timeout(TOTAL_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("hedgerow/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Setup(format!("HTTP client: {}", chain(&e))))
}

/// The `Authorization` header value from the list's credentials: `user:password` is HTTP
/// Basic, anything else a bearer token. Read at each download, never logged.
fn credentials(fetch: &ListFetch) -> Result<Option<String>, FetchError> {
    let path = match &fetch.credentials {
        None => return Ok(None),
        Some(Credentials::File(p)) => p.clone(),
        Some(Credentials::Systemd(name)) => match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) => Path::new(&dir).join(name),
            None => {
                return Err(FetchError::Setup(format!(
                    "credential {name:?}: $CREDENTIALS_DIRECTORY is not set (run under systemd with LoadCredential={name}:…, or use credentials_file)"
                )));
            }
        },
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| FetchError::Setup(format!("credentials {}: {e}", path.display())))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(FetchError::Setup(format!(
            "credentials {}: empty",
            path.display()
        )));
    }
    Ok(Some(if secret.contains(':') {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(secret)
        )
    } else {
        format!("Bearer {secret}")
    }))
}

/// An error with its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
