//! Identity that Envoy's own filters put in the CheckRequest's
//! `metadata_context`, which clients cannot forge: the payload of a JWT
//! that the `jwt_authn` filter verified, and the identity an earlier
//! `ext_authz` step (Authelia, Authentik) returned as dynamic metadata.
//!
//! Envoy sends a namespace only when the ext_authz filter lists it in
//! `metadata_context_namespaces` (untyped) or
//! `typed_metadata_context_namespaces` (a `google.protobuf.Struct` in an
//! `Any`, preferred when both are present, as Envoy does). This module
//! only reads; which source wins is the parent module's call.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value as PbValue};
use prost::Message;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::claims::{self, ClaimMapping, TokenClaims};
use super::presets::{check_groups, push_unique, split_list, Preset};
use super::{IdentityError, Source, User};

/// Where Envoy's `jwt_authn` filter writes verified payloads.
const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";
/// Where Envoy's `ext_authz` filter writes dynamic metadata.
const EXT_AUTHZ_NAMESPACE: &str = "envoy.filters.http.ext_authz";
/// Type URL of a `Struct` in `typed_filter_metadata`.
const STRUCT_TYPE_URL: &str = "type.googleapis.com/google.protobuf.Struct";
/// Nesting deeper than this is cut: claims are flat, and the cut keeps a
/// hostile payload from costing stack.
const MAX_DEPTH: usize = 16;

/// `identity.jwt_authn`: payloads of JWTs verified by Envoy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtAuthnConfig {
    /// Metadata namespace of the `jwt_authn` filter.
    pub namespace: String,
    /// Keys of verified payloads in the namespace: the providers'
    /// `payload_in_metadata` (Istio 1.21 and later: `payload`), or the
    /// issuers themselves (Istio before 1.21 keyed payloads by issuer).
    pub payload_keys: Vec<String>,
    /// Accepted `iss` values; empty accepts any issuer Envoy verified.
    pub issuers: Vec<String>,
    /// Claim naming the user.
    pub user_claim: String,
    /// Claim holding groups; `null` or `""` reads none.
    pub groups_claim: Option<String>,
}

impl Default for JwtAuthnConfig {
    fn default() -> Self {
        Self {
            namespace: JWT_AUTHN_NAMESPACE.into(),
            payload_keys: vec!["payload".into()],
            issuers: Vec::new(),
            user_claim: "sub".into(),
            groups_claim: Some("groups".into()),
        }
    }
}

/// `identity.ext_authz_metadata`: identity from an earlier ext_authz step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtAuthzMetadataConfig {
    /// Metadata namespace the earlier step wrote.
    pub namespace: String,
    /// The keys are this preset's header names (what Envoy's HTTP
    /// ext_authz `dynamic_metadata_from_headers` copies), lists split the
    /// preset's way.
    pub preset: Preset,
}

impl Default for ExtAuthzMetadataConfig {
    fn default() -> Self {
        Self {
            namespace: EXT_AUTHZ_NAMESPACE.into(),
            preset: Preset::Authelia,
        }
    }
}

impl JwtAuthnConfig {
    /// Refuses settings that can never name a user.
    pub fn check(&self) -> Result<(), String> {
        if self.payload_keys.is_empty() || self.user_claim.is_empty() {
            return Err("identity.jwt_authn: `payload_keys` and `user_claim` must be set".into());
        }
        Ok(())
    }

    /// Every verified payload present, each as a user with its claims.
    pub fn read(
        &self,
        metadata: &Metadata,
        max_groups: usize,
    ) -> Result<Vec<(User, TokenClaims)>, IdentityError> {
        let Some(namespace) = namespace(metadata, &self.namespace) else {
            return Ok(Vec::new());
        };
        let mapping = ClaimMapping {
            user_claim: self.user_claim.clone(),
            groups_claim: self.groups_claim.clone().filter(|g| !g.is_empty()),
        };
        let mut found = Vec::new();
        for key in &self.payload_keys {
            let Some(payload) = namespace.get(key) else {
                continue;
            };
            let Value::Object(payload) = payload else {
                return Err(metadata_error(format!("`{key}` is not a JWT payload")));
            };
            found.push(self.user(payload, &mapping, max_groups)?);
        }
        Ok(found)
    }

    fn user(
        &self,
        payload: &Map<String, Value>,
        mapping: &ClaimMapping,
        max_groups: usize,
    ) -> Result<(User, TokenClaims), IdentityError> {
        let token = TokenClaims::read(payload)?;
        if !self.issuers.is_empty() && !self.issuers.contains(&token.issuer) {
            let reason = format!("issuer `{}` is not accepted", token.issuer);
            return Err(metadata_error(reason));
        }
        let user = claims::user(payload, mapping, Source::JwtAuthn, max_groups)?;
        Ok((user, token))
    }
}

impl ExtAuthzMetadataConfig {
    /// The user named by the earlier step, if it named one.
    pub fn read(
        &self,
        metadata: &Metadata,
        max_groups: usize,
    ) -> Result<Option<User>, IdentityError> {
        let Some(fields) = namespace(metadata, &self.namespace) else {
            return Ok(None);
        };
        let set = self.preset.headers();
        let name = match fields.get(set.user) {
            None => return Ok(None),
            Some(Value::String(name)) if name.is_empty() => return Ok(None),
            Some(Value::String(name)) => name.clone(),
            Some(_) => return Err(metadata_error(format!("`{}` is not a string", set.user))),
        };
        let groups = list(fields.get(set.groups), set.group_separator);
        check_groups(groups.len(), max_groups)?;
        let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
        Ok(Some(User {
            name,
            groups,
            email: text(set.email),
            display_name: text(set.name),
            uid: set.uid.and_then(text),
            entitlements: set
                .entitlements
                .map_or_else(Vec::new, |k| list(fields.get(k), '|')),
            source: Source::ExtAuthzMetadata(self.preset),
        }))
    }
}

fn metadata_error(reason: String) -> IdentityError {
    IdentityError::Metadata { reason }
}

/// A list value: a separated string, or a list of strings.
fn list(value: Option<&Value>, separator: char) -> Vec<String> {
    match value {
        Some(Value::String(s)) => split_list(Some(s.clone()), separator),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            items
                .iter()
                .filter_map(Value::as_str)
                .for_each(|i| push_unique(&mut out, i));
            out
        }
        _ => Vec::new(),
    }
}

/// One namespace of the metadata as JSON; the typed form wins.
fn namespace(metadata: &Metadata, name: &str) -> Option<Map<String, Value>> {
    let typed = metadata
        .typed_filter_metadata
        .get(name)
        .filter(|any| any.type_url == STRUCT_TYPE_URL)
        .and_then(|any| Struct::decode(any.value.as_slice()).ok());
    let fields = match typed {
        Some(s) => s.fields,
        None => metadata.filter_metadata.get(name)?.fields.clone(),
    };
    Some(object(&fields, 0))
}

fn object(fields: &HashMap<String, PbValue>, depth: usize) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| (k.clone(), json(v, depth + 1)))
        .collect()
}

/// Converts a protobuf `Value` to JSON. Whole numbers become integers, so
/// `exp` reads the same as in a token.
fn json(value: &PbValue, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::StructValue(s)) => Value::Object(object(&s.fields, depth)),
        Some(Kind::ListValue(l)) => {
            Value::Array(l.values.iter().map(|v| json(v, depth + 1)).collect())
        }
    }
}

fn number(n: f64) -> Value {
    // Exact for every whole number up to 2^53, which covers NumericDates.
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        return Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
pub(crate) mod tests;
