//! Public keys of the assertion sources: parsing JWKS documents, loading
//! them from a file or URL, and refreshing them in the background.
//!
//! The request path only takes a snapshot ([`KeyCell::load`], one atomic
//! load, no lock, no I/O). A background task per source reloads keys on a
//! schedule, and early when a request saw an unknown key id; a failed
//! reload keeps the last good keys. Key locations come from the config
//! only, never from a request. Verifying tokens is left to the parent.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Notify;

use super::AssertionConfig;

/// Largest JWKS document read, in bytes; real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Most keys kept from one document.
const MAX_KEYS: usize = 64;
/// Timeout of one JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed reload, try again this soon (or at the refresh interval
/// if that is shorter).
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// An early reload (asked for by an unknown key id) waits at least this
/// long after the previous one, so a flood of made-up key ids cannot turn
/// into a flood of fetches.
const MIN_GAP: Duration = Duration::from_secs(10);

/// Why keys could not be loaded; the previous keys stay in use.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot fetch `{url}`: {reason}")]
    Fetch { url: String, reason: String },
    #[error("JWKS document is over {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("not a JWKS document: {0}")]
    Parse(String),
    #[error("JWKS document has no usable public signing key")]
    NoUsableKey,
}

/// One verification key.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    /// The key's `alg`, when the document pins one.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// The keys of one source at one moment.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS document, keeping public signing keys only: symmetric
    /// (`oct`) keys, encryption keys and unreadable entries are skipped.
    pub fn parse(text: &[u8]) -> Result<Self, KeyError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let doc: Document =
            serde_json::from_slice(text).map_err(|e| KeyError::Parse(e.to_string()))?;
        let keys: Vec<Key> = doc
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
            .filter_map(|jwk| usable(&jwk))
            .take(MAX_KEYS)
            .collect();
        if keys.is_empty() {
            return Err(KeyError::NoUsableKey);
        }
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Keys that may have signed a token with this `kid` and `alg`: the key
    /// with that id, or, for a token without one, every key of the
    /// algorithm's family. A key pinned to another `alg` never matches.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<&DecodingKey> {
        self.keys
            .iter()
            .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .filter(|k| k.key.family() == alg.family())
            .filter(|k| k.alg.is_none_or(|a| a == alg))
            .map(|k| &k.key)
            .collect()
    }
}

fn usable(jwk: &Jwk) -> Option<Key> {
    let public = matches!(
        jwk.algorithm,
        AlgorithmParameters::RSA(_)
            | AlgorithmParameters::EllipticCurve(_)
            | AlgorithmParameters::OctetKeyPair(_)
    );
    let signing = !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption));
    if !public || !signing {
        return None;
    }
    let alg = match jwk.common.key_algorithm {
        Some(a) => Some(Algorithm::try_from(a).ok()?),
        None => None,
    };
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

/// The current keys of one source: written by its refresh task, read by
/// requests. Clones share the same keys.
#[derive(Clone, Default)]
pub struct KeyCell {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    keys: ArcSwap<KeySet>,
    wanted: Notify,
}

impl std::fmt::Debug for KeyCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyCell({} keys)", self.load().len())
    }
}

impl KeyCell {
    /// The current keys (one atomic load).
    pub fn load(&self) -> Arc<KeySet> {
        self.inner.keys.load_full()
    }

    /// Replaces the keys.
    pub fn store(&self, set: KeySet) {
        self.inner.keys.store(Arc::new(set));
    }

    /// Asks the refresh task to reload soon; never blocks.
    pub fn request_refresh(&self) {
        self.inner.wanted.notify_one();
    }
}

/// Reads a JWKS file (at start-up and from the refresh task).
pub fn load_file(path: &Path) -> Result<KeySet, KeyError> {
    let text = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    if text.len() > MAX_JWKS_BYTES {
        return Err(KeyError::TooLarge);
    }
    KeySet::parse(&text)
}

/// Refuses a key URL that could be read or altered on the way: it must be
/// `https://`, or `http://` to a loopback address (a local sidecar).
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`jwks_url` `{url}`: {e}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "`jwks_url` `{url}` must use https (plain http only to a loopback address)"
        )),
    }
}

/// Fetches a JWKS document.
async fn fetch(client: &reqwest::Client, url: &str) -> Result<KeySet, KeyError> {
    let fail = |reason: String| KeyError::Fetch {
        url: url.to_owned(),
        reason,
    };
    let mut response = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| fail(e.to_string()))?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| fail(e.to_string()))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_JWKS_BYTES {
            return Err(KeyError::TooLarge);
        }
    }
    KeySet::parse(&body)
}

/// Loads one source's keys from wherever its config says.
async fn reload(
    client: Option<&reqwest::Client>,
    source: &AssertionConfig,
) -> Result<KeySet, KeyError> {
    match (&source.jwks_url, &source.jwks_file) {
        (Some(url), _) => match client {
            Some(client) => fetch(client, url).await,
            None => Err(KeyError::Fetch {
                url: url.clone(),
                reason: "no HTTP client".into(),
            }),
        },
        (None, Some(path)) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || load_file(&path))
                .await
                .map_err(|e| KeyError::Parse(e.to_string()))?
        }
        (None, None) => Err(KeyError::NoUsableKey),
    }
}

/// Starts one refresh task per assertion source and waits (at most
/// `initial_wait`) for sources fetched from a URL to get their first keys,
/// so that the first requests after start-up can be verified. The tasks
/// stop when the returned handles are aborted or the runtime ends.
pub async fn spawn_refresh(
    sources: &[AssertionConfig],
    initial_wait: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = client()
        .inspect_err(|e| tracing::error!(error = %e, "cannot build the JWKS client"))
        .ok();
    let tasks = sources
        .iter()
        .map(|s| tokio::spawn(refresh_loop(client.clone(), s.clone())))
        .collect();
    let deadline = tokio::time::Instant::now() + initial_wait;
    for source in sources {
        while source.keys.load().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tasks
}

fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
}

async fn refresh_loop(client: Option<reqwest::Client>, source: AssertionConfig) {
    let interval = Duration::from_secs(source.refresh_secs.max(1));
    loop {
        let wait = match reload(client.as_ref(), &source).await {
            Ok(set) => {
                tracing::debug!(
                    source = source.source.name(),
                    keys = set.len(),
                    "keys loaded"
                );
                source.keys.store(set);
                interval
            }
            Err(e) => {
                tracing::warn!(source = source.source.name(), error = %e,
                    "key reload failed; keeping the previous keys");
                interval.min(RETRY_AFTER)
            }
        };
        let early = async {
            tokio::time::sleep(MIN_GAP.min(wait)).await;
            source.keys.inner.wanted.notified().await;
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = early => {}
        }
    }
}
