//! Who is asking: the human identity forwarded by the authentication layer
//! and the workload identity proven by mesh mTLS.
//!
//! Identity headers (Authelia `Remote-*`, Authentik `X-authentik-*`,
//! oauth2-proxy `X-Forwarded-*`) are attacker-controlled unless the trust
//! gate says otherwise: they are believed only when the mTLS peer is a
//! configured trusted forwarder, or when the operator declares that the
//! proxy chain strips them. Untrusted ones are ignored for the decision and
//! named so the response can remove them upstream. Turning the result into
//! Cedar entities is left to the mapping module.

use serde::Deserialize;

use crate::config::IdentityConfig;
use crate::request::headers::{HeaderError, Headers};

/// A named set of identity headers that an authentication proxy sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    Authelia,
    Authentik,
    Oauth2Proxy,
}

/// Header names of one preset, all lower-case as Envoy sends them.
struct HeaderSet {
    user: &'static str,
    groups: &'static str,
    group_separator: char,
    email: &'static str,
    name: &'static str,
    uid: Option<&'static str>,
    entitlements: Option<&'static str>,
}

impl Preset {
    /// Stable name used in logs, spans and the Cedar context.
    pub fn name(self) -> &'static str {
        match self {
            Self::Authelia => "authelia",
            Self::Authentik => "authentik",
            Self::Oauth2Proxy => "oauth2-proxy",
        }
    }

    fn headers(self) -> HeaderSet {
        match self {
            Self::Authelia => HeaderSet {
                user: "remote-user",
                groups: "remote-groups",
                group_separator: ',',
                email: "remote-email",
                name: "remote-name",
                uid: None,
                entitlements: None,
            },
            Self::Authentik => HeaderSet {
                user: "x-authentik-username",
                groups: "x-authentik-groups",
                group_separator: '|',
                email: "x-authentik-email",
                name: "x-authentik-name",
                uid: Some("x-authentik-uid"),
                entitlements: Some("x-authentik-entitlements"),
            },
            Self::Oauth2Proxy => HeaderSet {
                user: "x-forwarded-user",
                groups: "x-forwarded-groups",
                group_separator: ',',
                email: "x-forwarded-email",
                name: "x-forwarded-preferred-username",
                uid: None,
                entitlements: None,
            },
        }
    }

    /// Every header this preset reads, for stripping untrusted copies.
    pub fn all_headers(self) -> Vec<&'static str> {
        let h = self.headers();
        let mut all = vec![h.user, h.groups, h.email, h.name];
        all.extend(h.uid);
        all.extend(h.entitlements);
        all
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
    pub source: Preset,
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
    /// Whether identity headers were believed for this request.
    pub trusted: bool,
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
    #[error("trusted sources name different users: `{first}` and `{second}`")]
    Conflict { first: String, second: String },
}

impl IdentityError {
    /// HTTP status of the deny this error causes.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Header(e) => e.http_status(),
            Self::TooManyGroups { .. } => 431,
            Self::Conflict { .. } => 403,
        }
    }
}

/// Reads the identity of one request.
pub fn resolve(
    config: &IdentityConfig,
    source_principal: &str,
    headers: &Headers,
) -> Result<Identity, IdentityError> {
    let peer = parse_spiffe(source_principal, &config.trust_domains);
    let from_forwarder = config
        .trusted_forwarders
        .iter()
        .any(|f| f == source_principal);
    let trusted = config.headers_stripped_by_proxy || from_forwarder;

    let mut ignored_headers = Vec::new();
    let mut user: Option<User> = None;
    for preset in &config.presets {
        if !trusted {
            let present = preset
                .all_headers()
                .into_iter()
                .filter(|h| headers.contains(h));
            ignored_headers.extend(present);
            continue;
        }
        let Some(found) = read_user(*preset, headers, config.max_groups)? else {
            continue;
        };
        match &user {
            Some(first) if first.name != found.name => {
                return Err(IdentityError::Conflict {
                    first: first.name.clone(),
                    second: found.name,
                });
            }
            Some(_) => {}
            None => user = Some(found),
        }
    }

    let principal = match (user, &peer) {
        (Some(user), _) => Principal::User(user),
        // A forwarder that names nobody speaks for an anonymous client, not
        // for itself: the gateway's own grants must not leak to its callers.
        (None, Some(_)) if from_forwarder => Principal::Anonymous,
        (None, Some(workload)) => Principal::Workload(workload.clone()),
        (None, None) => Principal::Anonymous,
    };
    Ok(Identity {
        principal,
        peer,
        trusted,
        ignored_headers,
    })
}

/// Reads one preset's user, if its user header is present and non-empty.
fn read_user(
    preset: Preset,
    headers: &Headers,
    max_groups: usize,
) -> Result<Option<User>, IdentityError> {
    let set = preset.headers();
    let Some(name) = headers.get_single(set.user)?.filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let groups = split_list(headers.get(set.groups), set.group_separator);
    if groups.len() > max_groups {
        return Err(IdentityError::TooManyGroups {
            count: groups.len(),
            limit: max_groups,
        });
    }
    let entitlements = match set.entitlements {
        Some(h) => split_list(headers.get(h), '|'),
        None => Vec::new(),
    };
    let uid = match set.uid {
        Some(h) => headers.get_single(h)?.map(str::to_owned),
        None => None,
    };
    Ok(Some(User {
        name: name.to_owned(),
        groups,
        email: headers.get_single(set.email)?.map(str::to_owned),
        display_name: headers.get(set.name),
        uid,
        entitlements,
        source: preset,
    }))
}

/// Splits a list header: items trimmed, empty items dropped, repeats
/// collapsed, so `"ops,,dev, "` is `[ops, dev]` and `""` is empty.
pub fn split_list(value: Option<String>, separator: char) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for item in value.iter().flat_map(|v| v.split(separator)) {
        let item = item.trim();
        if !item.is_empty() && !items.iter().any(|i| i == item) {
            items.push(item.to_owned());
        }
    }
    items
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
mod tests;
