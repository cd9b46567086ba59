//! Claims of a verified token: the user they name and the facts a policy
//! may need for step-up decisions (scopes, audience, `amr`, `acr`, times).
//!
//! Both token sources use this module: assertions verified here (`jwt`)
//! and payloads Envoy's `jwt_authn` filter verified (`metadata`). It reads
//! an already-trusted JSON object; proving the token is left to them, and
//! turning the facts into Cedar values to the mapping module.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::presets::{check_groups, push_unique};
use super::{IdentityError, Source, User};

/// Which claims name the user and their groups.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimMapping {
    /// Claim whose string value is the user's name (`User::"<name>"`).
    pub user_claim: String,
    /// Claim holding the user's groups (a list of strings, or one string);
    /// `None` reads no groups.
    pub groups_claim: Option<String>,
}

/// The token facts put in `context.jwt`. Absent claims stay `None` or
/// empty, never `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenClaims {
    pub issuer: String,
    pub subject: Option<String>,
    pub audience: Vec<String>,
    /// `scope` (space-separated) and `scp` (list or space-separated), merged.
    pub scopes: Vec<String>,
    /// Authentication methods (`amr`), e.g. `pwd`, `otp`, `mfa`, `hwk`.
    pub amr: Vec<String>,
    /// Authentication context class (`acr`).
    pub acr: Option<String>,
    /// Authorized party (`azp`): the client the token was issued to.
    pub azp: Option<String>,
    /// `exp`, `iat` and `auth_time`, in seconds since the epoch.
    pub expires_at: Option<i64>,
    pub issued_at: Option<i64>,
    pub auth_time: Option<i64>,
}

/// Why a verified token's claims cannot name a user; denies with 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("claim `{0}` is missing or not a non-empty string")]
    User(String),
    #[error("claim `{0}` is not a string or a list of strings")]
    Groups(String),
    #[error("claim `iss` is missing or not a string")]
    Issuer,
}

impl TokenClaims {
    /// Reads the standard claims of a payload.
    pub fn read(payload: &Map<String, Value>) -> Result<Self, ClaimError> {
        let text = |key: &str| payload.get(key).and_then(Value::as_str).map(str::to_owned);
        let issuer = text("iss")
            .filter(|i| !i.is_empty())
            .ok_or(ClaimError::Issuer)?;
        let mut scopes = words(payload.get("scope"));
        for scope in words(payload.get("scp")) {
            push_unique(&mut scopes, &scope);
        }
        Ok(Self {
            issuer,
            subject: text("sub").filter(|s| !s.is_empty()),
            audience: words(payload.get("aud")),
            scopes,
            amr: words(payload.get("amr")),
            acr: text("acr").filter(|s| !s.is_empty()),
            azp: text("azp").filter(|s| !s.is_empty()),
            expires_at: seconds(payload.get("exp")),
            issued_at: seconds(payload.get("iat")),
            auth_time: seconds(payload.get("auth_time")),
        })
    }
}

/// The user a payload names, by `mapping`, with `sub` as the stable uid.
pub fn user(
    payload: &Map<String, Value>,
    mapping: &ClaimMapping,
    source: Source,
    max_groups: usize,
) -> Result<User, IdentityError> {
    let claim = &mapping.user_claim;
    let name = payload
        .get(claim)
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ClaimError::User(claim.clone()))?;
    let groups = match &mapping.groups_claim {
        Some(claim) => groups(payload.get(claim), claim)?,
        None => Vec::new(),
    };
    check_groups(groups.len(), max_groups)?;
    let text = |key: &str| payload.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(User {
        name: name.to_owned(),
        groups,
        email: text("email").filter(|e| !e.is_empty()),
        display_name: text("name").filter(|n| !n.is_empty()),
        uid: text("sub").filter(|s| !s.is_empty()),
        entitlements: Vec::new(),
        source,
    })
}

/// A groups claim: absent is no groups; a string is one group; a list must
/// hold only strings (anything else is refused rather than half-read).
fn groups(value: Option<&Value>, claim: &str) -> Result<Vec<String>, ClaimError> {
    let mut items = Vec::new();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::String(one)) => push_unique(&mut items, one),
        Some(Value::Array(list)) => {
            for item in list {
                let item = item.as_str().ok_or(ClaimError::Groups(claim.into()))?;
                push_unique(&mut items, item);
            }
        }
        Some(_) => return Err(ClaimError::Groups(claim.into())),
    }
    Ok(items)
}

/// A claim that is a space-separated string or a list of strings; other
/// item types are dropped (these claims only ever add permissions through
/// `contains`, so dropping cannot widen access).
fn words(value: Option<&Value>) -> Vec<String> {
    let mut items = Vec::new();
    match value {
        Some(Value::String(s)) => s.split(' ').for_each(|w| push_unique(&mut items, w)),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .for_each(|w| push_unique(&mut items, w)),
        _ => {}
    }
    items
}

/// A NumericDate claim, whole seconds; fractions are cut, other types
/// dropped.
fn seconds(value: Option<&Value>) -> Option<i64> {
    let value = value?;
    value
        .as_i64()
        .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn scope_and_scp_merge_without_repeats() {
        let claims = TokenClaims::read(&map(json!({
            "iss": "https://idp.test", "scope": "read  write", "scp": ["write", "admin"]
        })))
        .unwrap();
        assert_eq!(claims.scopes, vec!["read", "write", "admin"]);
    }

    #[test]
    fn missing_issuer_is_refused() {
        assert_eq!(
            TokenClaims::read(&map(json!({"sub": "a"}))),
            Err(ClaimError::Issuer)
        );
    }

    #[test]
    fn audience_may_be_a_string_or_a_list() {
        let one = TokenClaims::read(&map(json!({"iss": "i", "aud": "app"}))).unwrap();
        let many = TokenClaims::read(&map(json!({"iss": "i", "aud": ["a", "b"]}))).unwrap();
        assert_eq!((one.audience.len(), many.audience.len()), (1, 2));
    }

    #[test]
    fn groups_claim_with_a_non_string_item_is_refused() {
        let mapping = ClaimMapping {
            user_claim: "sub".into(),
            groups_claim: Some("groups".into()),
        };
        let payload = map(json!({"sub": "alice", "groups": ["ops", 7]}));
        let err = user(&payload, &mapping, Source::JwtAuthn, 10).unwrap_err();
        assert_eq!(err.http_status(), 401);
    }

    #[test]
    fn user_claim_that_is_not_a_string_names_nobody() {
        let mapping = ClaimMapping {
            user_claim: "sub".into(),
            groups_claim: None,
        };
        for payload in [json!({"sub": 42}), json!({"sub": ""}), json!({})] {
            assert!(user(&map(payload), &mapping, Source::JwtAuthn, 10).is_err());
        }
    }
}
