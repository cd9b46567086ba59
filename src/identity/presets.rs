//! Header presets: the identity headers each authentication proxy sends,
//! and reading a user from them.
//!
//! A preset only names headers and says how lists are split. Whether the
//! headers are believed is the trust gate's call (in the parent module);
//! Envoy dynamic metadata reuses the same names as its keys (see
//! `metadata`).

use serde::Deserialize;

use super::{IdentityError, Source, User};
use crate::request::headers::Headers;

/// A named set of identity headers that an authentication proxy sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Authelia's `Remote-*` headers.
    Authelia,
    /// Authentik's `X-authentik-*` headers.
    Authentik,
    /// oauth2-proxy as a reverse proxy: `X-Forwarded-*`.
    Oauth2Proxy,
    /// oauth2-proxy behind `auth_request` (`--set-xauthrequest`):
    /// `X-Auth-Request-*`.
    Oauth2ProxyAuthRequest,
}

/// Header names of one preset, all lower-case as Envoy sends them.
pub(crate) struct HeaderSet {
    pub user: &'static str,
    pub groups: &'static str,
    pub group_separator: char,
    pub email: &'static str,
    pub name: &'static str,
    pub uid: Option<&'static str>,
    pub entitlements: Option<&'static str>,
}

impl Preset {
    /// Stable name used in config, logs, spans and the Cedar context.
    pub fn name(self) -> &'static str {
        match self {
            Self::Authelia => "authelia",
            Self::Authentik => "authentik",
            Self::Oauth2Proxy => "oauth2-proxy",
            Self::Oauth2ProxyAuthRequest => "oauth2-proxy-auth-request",
        }
    }

    pub(crate) fn headers(self) -> HeaderSet {
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
            Self::Oauth2Proxy => oauth2_proxy("x-forwarded-"),
            Self::Oauth2ProxyAuthRequest => oauth2_proxy("x-auth-request-"),
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

/// oauth2-proxy sends the same four headers under two prefixes.
fn oauth2_proxy(prefix: &'static str) -> HeaderSet {
    let (user, groups, email, name) = match prefix {
        "x-forwarded-" => (
            "x-forwarded-user",
            "x-forwarded-groups",
            "x-forwarded-email",
            "x-forwarded-preferred-username",
        ),
        _ => (
            "x-auth-request-user",
            "x-auth-request-groups",
            "x-auth-request-email",
            "x-auth-request-preferred-username",
        ),
    };
    HeaderSet {
        user,
        groups,
        group_separator: ',',
        email,
        name,
        uid: None,
        entitlements: None,
    }
}

/// Reads one preset's user, if its user header is present and non-empty.
pub(crate) fn read_user(
    preset: Preset,
    headers: &Headers,
    max_groups: usize,
) -> Result<Option<User>, IdentityError> {
    let set = preset.headers();
    let Some(name) = headers.get_single(set.user)?.filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let groups = split_list(headers.get(set.groups), set.group_separator);
    check_groups(groups.len(), max_groups)?;
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
        source: Source::Headers(preset),
    }))
}

/// Refuses more groups than configured (431).
pub(crate) fn check_groups(count: usize, limit: usize) -> Result<(), IdentityError> {
    if count > limit {
        return Err(IdentityError::TooManyGroups { count, limit });
    }
    Ok(())
}

/// Splits a list header: items trimmed, empty items dropped, repeats
/// collapsed, so `"ops,,dev, "` is `[ops, dev]` and `""` is empty.
pub fn split_list(value: Option<String>, separator: char) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for item in value.iter().flat_map(|v| v.split(separator)) {
        push_unique(&mut items, item);
    }
    items
}

/// Adds a trimmed, non-empty item unless it is already listed.
pub(crate) fn push_unique(items: &mut Vec<String>, item: &str) {
    let item = item.trim();
    if !item.is_empty() && !items.iter().any(|i| i == item) {
        items.push(item.to_owned());
    }
}
