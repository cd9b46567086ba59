//! Who is asking: the human identity proven by a signed assertion, by
//! Envoy's own filters or by trusted identity headers, and the workload
//! identity proven by mesh mTLS.
//!
//! Sources, strongest first: assertions verified here (`jwt`), metadata
//! from Envoy's `jwt_authn` and `ext_authz` filters (`metadata`), then
//! header presets (`presets`: Authelia `Remote-*`, Authentik
//! `X-authentik-*`, oauth2-proxy). Headers are attacker-controlled unless
//! the trust gate says otherwise: they are believed only when the mTLS peer
//! is a configured trusted forwarder, or when the operator declares that
//! the proxy chain strips them; untrusted ones are ignored and named so the
//! response can remove them upstream. At most one person is the principal:
//! two sources naming different people deny. Turning the result into Cedar
//! entities is left to the mapping module.

pub mod claims;
pub mod jwt;
pub mod metadata;
pub mod presets;

use envoy_types::pb::envoy::config::core::v3::Metadata;

use crate::config::IdentityConfig;
use crate::request::headers::{HeaderError, Headers};
pub use claims::{ClaimError, TokenClaims};
pub use jwt::AssertionError;
pub use presets::{split_list, Preset};

/// Where a user's identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Trusted identity headers of a preset.
    Headers(Preset),
    /// A signed assertion verified here.
    Assertion(jwt::AssertionSource),
    /// A JWT payload verified by Envoy's `jwt_authn` filter.
    JwtAuthn,
    /// Dynamic metadata of an earlier `ext_authz` step.
    ExtAuthzMetadata(Preset),
}

impl Source {
    /// Stable name used in logs, spans and the Cedar context.
    pub fn name(self) -> &'static str {
        match self {
            Self::Headers(preset) => preset.name(),
            Self::Assertion(source) => source.name(),
            Self::JwtAuthn => "jwt-authn",
            Self::ExtAuthzMetadata(_) => "ext-authz-metadata",
        }
    }
}

/// A person, as named by a trusted authentication proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub uid: Option<String>,
    pub entitlements: Vec<String>,
    pub source: Source,
}

/// A workload, as proven by its mTLS certificate's SPIFFE id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The whole id, `spiffe://<trust-domain>/<path>`.
    pub id: String,
    pub trust_domain: String,
    /// Namespace and service account when the path has Istio's
    /// `/ns/<ns>/sa/<sa>` shape.
    pub namespace: Option<String>,
    pub service_account: Option<String>,
}

/// The principal a request is decided for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User(User),
    Workload(Workload),
    Anonymous,
}

/// The outcome of reading identity from one request.
#[derive(Debug, Clone)]
pub struct Identity {
    pub principal: Principal,
    /// The mTLS peer, kept in the context even when a user is the principal.
    pub peer: Option<Workload>,
    /// Whether identity headers were believed for this request, or a
    /// verified source (token, metadata) named the user.
    pub trusted: bool,
    /// The claims of the token that named the user, if one did.
    pub token: Option<TokenClaims>,
    /// Identity headers that arrived but were not believed.
    pub ignored_headers: Vec<&'static str>,
}

impl Identity {
    /// Where the principal came from: a preset name, `spiffe` or `none`.
    pub fn source(&self) -> &'static str {
        match &self.principal {
            Principal::User(user) => user.source.name(),
            Principal::Workload(_) => "spiffe",
            Principal::Anonymous => "none",
        }
    }
}

/// Why identity could not be read; every variant denies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("{count} groups exceed the limit of {limit}")]
    TooManyGroups { count: usize, limit: usize },
    #[error(
        "trusted sources name different users: `{first}` ({first_source}) and \
         `{second}` ({second_source})"
    )]
    Conflict {
        first: String,
        first_source: &'static str,
        second: String,
        second_source: &'static str,
    },
    #[error("{source_name} assertion: {reason}")]
    Assertion {
        source_name: &'static str,
        reason: AssertionError,
    },
    #[error("token claims: {0}")]
    Claims(#[from] ClaimError),
    #[error("identity metadata: {reason}")]
    Metadata { reason: String },
}

impl IdentityError {
    /// HTTP status of the deny this error causes.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Header(e) => e.http_status(),
            Self::TooManyGroups { .. } => 431,
            Self::Conflict { .. } => 403,
            // Present but unusable proof of identity: tampering, a clock
            // problem or a misconfigured issuer. Ask the client to sign in.
            Self::Assertion { .. } | Self::Claims(_) | Self::Metadata { .. } => 401,
        }
    }
}

/// Checks the identity settings serde cannot, resolves key files against
/// `base` and loads them (called once, when the config is read).
pub fn prepare(config: &mut IdentityConfig, base: &std::path::Path) -> Result<(), String> {
    for assertion in &mut config.jwt_assertions {
        assertion.prepare(base)?;
    }
    if let Some(jwt_authn) = &config.jwt_authn {
        jwt_authn.check()?;
    }
    Ok(())
}

/// A user with the claims of the token that named them, if any.
type Found = (User, Option<TokenClaims>);

/// Reads the identity of one request: every configured source in priority
/// order, the first user found is the principal, and any later source
/// naming someone else is a conflict.
pub fn resolve(
    config: &IdentityConfig,
    source_principal: &str,
    headers: &Headers,
    metadata: Option<&Metadata>,
) -> Result<Identity, IdentityError> {
    let peer = parse_spiffe(source_principal, &config.trust_domains);
    let from_forwarder = config
        .trusted_forwarders
        .iter()
        .any(|f| f == source_principal);
    let trusted = config.headers_stripped_by_proxy || from_forwarder;

    let mut found: Option<Found> = None;
    for (user, token) in verified(config, headers, metadata)? {
        agree(&mut found, user, token)?;
    }
    let mut ignored_headers = Vec::new();
    for preset in &config.presets {
        if !trusted {
            let present = preset
                .all_headers()
                .into_iter()
                .filter(|h| headers.contains(h));
            ignored_headers.extend(present);
        } else if let Some(user) = presets::read_user(*preset, headers, config.max_groups)? {
            agree(&mut found, user, None)?;
        }
    }

    let (user, token) = found.map_or((None, None), |(u, t)| (Some(u), t));
    Ok(Identity {
        trusted: trusted || user.is_some(),
        principal: principal(user, peer.as_ref(), from_forwarder),
        peer,
        token,
        ignored_headers,
    })
}

/// Users named by verified sources, strongest first: assertions, then
/// `jwt_authn` payloads, then `ext_authz` metadata.
fn verified(
    config: &IdentityConfig,
    headers: &Headers,
    metadata: Option<&Metadata>,
) -> Result<Vec<Found>, IdentityError> {
    let max = config.max_groups;
    let mut found = Vec::new();
    for assertion in &config.jwt_assertions {
        if let Some((user, token)) = assertion.read(headers, max)? {
            found.push((user, Some(token)));
        }
    }
    let Some(metadata) = metadata else {
        return Ok(found);
    };
    if let Some(jwt_authn) = &config.jwt_authn {
        let payloads = jwt_authn.read(metadata, max)?;
        found.extend(payloads.into_iter().map(|(u, t)| (u, Some(t))));
    }
    if let Some(ext_authz) = &config.ext_authz_metadata {
        found.extend(ext_authz.read(metadata, max)?.map(|u| (u, None)));
    }
    Ok(found)
}

/// Keeps the first user found; a later one must name the same person.
fn agree(
    found: &mut Option<Found>,
    user: User,
    token: Option<TokenClaims>,
) -> Result<(), IdentityError> {
    match found {
        Some((first, _)) if first.name != user.name => Err(IdentityError::Conflict {
            first: first.name.clone(),
            first_source: first.source.name(),
            second: user.name,
            second_source: user.source.name(),
        }),
        Some(_) => Ok(()),
        None => {
            *found = Some((user, token));
            Ok(())
        }
    }
}

fn principal(user: Option<User>, peer: Option<&Workload>, from_forwarder: bool) -> Principal {
    match (user, peer) {
        (Some(user), _) => Principal::User(user),
        // A forwarder that names nobody speaks for an anonymous client, not
        // for itself: the gateway's own grants must not leak to its callers.
        (None, Some(_)) if from_forwarder => Principal::Anonymous,
        (None, Some(workload)) => Principal::Workload(workload.clone()),
        (None, None) => Principal::Anonymous,
    }
}

/// Parses a SPIFFE id. Anything else (a non-SPIFFE URI, an empty string, an
/// empty or unlisted trust domain) is no workload identity at all.
pub fn parse_spiffe(id: &str, trust_domains: &[String]) -> Option<Workload> {
    let rest = id.strip_prefix("spiffe://")?;
    let (domain, path) = rest.split_once('/').unwrap_or((rest, ""));
    let domain_ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    if !domain_ok
        || path
            .bytes()
            .any(|b| b.is_ascii_control() || b == b'?' || b == b'#')
    {
        return None;
    }
    if !trust_domains.is_empty() && !trust_domains.iter().any(|d| d == domain) {
        return None;
    }
    let parts: Vec<&str> = path.split('/').collect();
    let (namespace, service_account) = match parts.as_slice() {
        ["ns", ns, "sa", sa] if !ns.is_empty() && !sa.is_empty() => {
            (Some(ns.to_string()), Some(sa.to_string()))
        }
        _ => (None, None),
    };
    Some(Workload {
        id: id.to_owned(),
        trust_domain: domain.to_owned(),
        namespace,
        service_account,
    })
}

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
