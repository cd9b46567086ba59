//! Signed identity assertions verified here: Authentik `X-authentik-jwt`,
//! Pomerium `X-Pomerium-Jwt-Assertion`, Cloudflare Access
//! `Cf-Access-Jwt-Assertion` and Google IAP `x-goog-iap-jwt-assertion`.
//!
//! Each configured source pins an issuer, one or more audiences, the
//! signature algorithms it accepts (asymmetric only: never `none`, never
//! an HMAC secret) and where its public keys come from (a JWKS file or
//! URL). Verification only reads the source's current key snapshot; the
//! keys are loaded and refreshed off the request path by `keys`, and a key
//! location never comes from a request. Signature and claim checks are
//! jsonwebtoken's. Which source wins when several name a user is the
//! parent module's call.

pub mod keys;

use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::claims::{self, ClaimMapping, TokenClaims};
use super::{IdentityError, Source, User};
use crate::request::headers::Headers;
pub use keys::KeyCell;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds: enough for
/// NTP-synchronised hosts, short enough that an expired assertion dies
/// quickly.
const DEFAULT_LEEWAY_SECS: u64 = 30;
/// How often keys are reloaded, in seconds: identity providers publish a
/// new key well before signing with it, so five minutes picks it up in time.
const DEFAULT_REFRESH_SECS: u64 = 300;

/// The authentication proxies whose signed assertions can be verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AssertionSource {
    /// Authentik's proxy outpost, `X-authentik-jwt`.
    Authentik,
    /// Pomerium, `X-Pomerium-Jwt-Assertion`.
    Pomerium,
    /// Cloudflare Access, `Cf-Access-Jwt-Assertion`.
    CloudflareAccess,
    /// Google Cloud Identity-Aware Proxy, `x-goog-iap-jwt-assertion`.
    GoogleIap,
}

impl AssertionSource {
    /// Stable name used in logs, spans and `context.identity_source`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Authentik => "authentik-jwt",
            Self::Pomerium => "pomerium",
            Self::CloudflareAccess => "cloudflare-access",
            Self::GoogleIap => "google-iap",
        }
    }

    /// The header the proxy puts its assertion in.
    pub fn header(self) -> &'static str {
        match self {
            Self::Authentik => "x-authentik-jwt",
            Self::Pomerium => "x-pomerium-jwt-assertion",
            Self::CloudflareAccess => "cf-access-jwt-assertion",
            Self::GoogleIap => "x-goog-iap-jwt-assertion",
        }
    }

    /// What the proxy signs with by default.
    fn algorithms(self) -> Vec<Algorithm> {
        match self {
            Self::Authentik => vec![Algorithm::RS256, Algorithm::ES256],
            Self::Pomerium | Self::GoogleIap => vec![Algorithm::ES256],
            Self::CloudflareAccess => vec![Algorithm::RS256],
        }
    }

    /// Which claims name the user and groups by default.
    fn claims(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::Authentik => ("preferred_username", Some("groups")),
            Self::Pomerium => ("email", Some("groups")),
            Self::CloudflareAccess | Self::GoogleIap => ("email", None),
        }
    }
}

/// One assertion source, as configured under `identity.jwt_assertions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionConfig {
    pub source: AssertionSource,
    /// The exact `iss` accepted.
    pub issuer: String,
    /// Accepted `aud` values; the token must name at least one.
    pub audience: Vec<String>,
    /// A JWKS file, re-read every `refresh_secs` (a mounted Secret or
    /// ConfigMap may change under it).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL (`https://`, or `http://` to a loopback address only).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Accepted `alg` values; default per source. HMAC and `none` are
    /// refused at load.
    #[serde(default)]
    pub algorithms: Vec<Algorithm>,
    /// Claim naming the user; default per source.
    #[serde(default)]
    pub user_claim: Option<String>,
    /// Claim holding groups; default per source (none for Cloudflare Access
    /// and Google IAP). `""` reads no groups.
    #[serde(default)]
    pub groups_claim: Option<String>,
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    #[serde(default = "default_refresh")]
    pub refresh_secs: u64,
    /// The current keys; filled at load and by the refresh task, never
    /// from YAML.
    #[serde(skip)]
    pub keys: KeyCell,
}

fn default_leeway() -> u64 {
    DEFAULT_LEEWAY_SECS
}

fn default_refresh() -> u64 {
    DEFAULT_REFRESH_SECS
}

/// Why an assertion was not accepted; every variant denies with 401.
/// Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("header `{0}` is empty")]
    Empty(&'static str),
    #[error("token header is unreadable or names an unsupported algorithm")]
    Malformed,
    #[error("algorithm `{0:?}` is not accepted for this source")]
    Algorithm(Algorithm),
    #[error("no signing keys are loaded for this source")]
    NoKeys,
    #[error("no loaded key matches key id `{0}`")]
    UnknownKey(String),
    #[error("token rejected: {0}")]
    Rejected(String),
}

impl AssertionConfig {
    /// The header read, lower-case.
    pub fn header(&self) -> &'static str {
        self.source.header()
    }

    /// The configured claim mapping, with the source's defaults filled in.
    pub fn mapping(&self) -> ClaimMapping {
        let (user, groups) = self.source.claims();
        let groups_claim = match &self.groups_claim {
            Some(g) if g.is_empty() => None,
            Some(g) => Some(g.clone()),
            None => groups.map(str::to_owned),
        };
        ClaimMapping {
            user_claim: self.user_claim.clone().unwrap_or_else(|| user.into()),
            groups_claim,
        }
    }

    /// Checks the settings, resolves `jwks_file` against `base` and loads
    /// it, so that a broken key file stops start-up (and `validate`).
    pub fn prepare(&mut self, base: &Path) -> Result<(), String> {
        let name = self.source.name();
        let fail = |reason: String| format!("identity.jwt_assertions ({name}): {reason}");
        if self.algorithms.is_empty() {
            self.algorithms = self.source.algorithms();
        }
        check_settings(self).map_err(fail)?;
        if let Some(file) = &mut self.jwks_file {
            *file = base.join(&*file);
            let set = keys::load_file(file).map_err(|e| fail(e.to_string()))?;
            self.keys.store(set);
        }
        Ok(())
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, AssertionError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AssertionError::Malformed)?;
        let alg = header.alg;
        if !self.algorithms.contains(&alg) {
            return Err(AssertionError::Algorithm(alg));
        }
        let keys = self.keys.load();
        let candidates = keys.candidates(header.kid.as_deref(), alg);
        if candidates.is_empty() {
            return Err(self.missing_key(header.kid, keys.is_empty()));
        }
        let validation = self.validation(alg);
        let mut last = AssertionError::NoKeys;
        for key in candidates {
            match decode(token, key, &validation) {
                Ok(claims) => return Ok(claims),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// An unknown key id may mean the issuer rotated keys: ask the refresh
    /// task to reload early (it never runs on this path).
    fn missing_key(&self, kid: Option<String>, empty: bool) -> AssertionError {
        self.keys.request_refresh();
        match kid {
            Some(kid) if !empty => AssertionError::UnknownKey(kid),
            _ => AssertionError::NoKeys,
        }
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway_secs;
        validation
    }

    /// Reads and verifies this source's assertion, if its header is there.
    pub fn read(
        &self,
        headers: &Headers,
        max_groups: usize,
    ) -> Result<Option<(User, TokenClaims)>, IdentityError> {
        let Some(token) = headers.get_single(self.header())? else {
            return Ok(None);
        };
        let invalid = |reason| IdentityError::Assertion {
            source_name: self.source.name(),
            reason,
        };
        if token.trim().is_empty() {
            return Err(invalid(AssertionError::Empty(self.header())));
        }
        let payload = self.verify(token.trim()).map_err(invalid)?;
        let source = Source::Assertion(self.source);
        let user = claims::user(&payload, &self.mapping(), source, max_groups)?;
        Ok(Some((user, TokenClaims::read(&payload)?)))
    }
}

fn decode(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Map<String, Value>, AssertionError> {
    jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| AssertionError::Rejected(e.to_string()))
}

/// Refuses settings that would weaken verification.
fn check_settings(config: &AssertionConfig) -> Result<(), String> {
    if config.issuer.is_empty() {
        return Err("`issuer` must be set".into());
    }
    if config.audience.is_empty() || config.audience.iter().any(String::is_empty) {
        return Err("`audience` must list at least one non-empty value".into());
    }
    if let Some(alg) = config
        .algorithms
        .iter()
        .find(|a| a.family() == AlgorithmFamily::Hmac)
    {
        return Err(format!(
            "`{alg:?}` needs a shared secret; only public-key algorithms are accepted"
        ));
    }
    match (&config.jwks_file, &config.jwks_url) {
        (Some(_), None) => Ok(()),
        (None, Some(url)) => keys::check_url(url),
        _ => Err("set exactly one of `jwks_file` and `jwks_url`".into()),
    }
}

#[cfg(test)]
mod tests;
