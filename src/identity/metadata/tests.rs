//! Unit tests of reading identity from Envoy's metadata_context.

use envoy_types::pb::google::protobuf::{Any, ListValue};
use serde_json::json;

use super::*;

/// A protobuf `Struct` from a JSON object, as Envoy would send it.
pub fn pb_struct(value: &Value) -> Struct {
    let fields = value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), pb(v)))
        .collect();
    Struct { fields }
}

fn pb(value: &Value) -> PbValue {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(pb).collect(),
        }),
        Value::Object(_) => Kind::StructValue(pb_struct(value)),
    };
    PbValue { kind: Some(kind) }
}

fn metadata(namespace: &str, fields: Value) -> Metadata {
    Metadata {
        filter_metadata: [(namespace.to_owned(), pb_struct(&fields))].into(),
        ..Default::default()
    }
}

fn payload() -> Value {
    json!({
        "iss": "https://idp.example.test", "sub": "alice", "aud": "app",
        "exp": 1_900_000_000u64, "groups": ["staff"], "scope": "reports:read",
        "amr": ["pwd", "mfa"], "acr": "urn:mfa"
    })
}

#[test]
fn jwt_authn_payload_under_payload_key_names_the_user() {
    let m = metadata(JWT_AUTHN_NAMESPACE, json!({"payload": payload()}));
    let found = JwtAuthnConfig::default().read(&m, 16).unwrap();
    let (user, token) = &found[0];
    assert_eq!(
        (user.name.as_str(), user.source),
        ("alice", Source::JwtAuthn)
    );
    assert_eq!(user.groups, vec!["staff"]);
    assert_eq!(token.scopes, vec!["reports:read"]);
    assert_eq!(token.expires_at, Some(1_900_000_000));
    assert_eq!(token.acr.as_deref(), Some("urn:mfa"));
}

#[test]
fn istio_before_1_21_keys_payloads_by_issuer() {
    let issuer = "https://idp.example.test";
    let m = metadata(JWT_AUTHN_NAMESPACE, json!({ issuer: payload() }));
    assert!(JwtAuthnConfig::default().read(&m, 16).unwrap().is_empty());
    let config = JwtAuthnConfig {
        payload_keys: vec![issuer.into()],
        ..JwtAuthnConfig::default()
    };
    assert_eq!(config.read(&m, 16).unwrap()[0].0.name, "alice");
}

#[test]
fn jwt_authn_issuer_outside_the_allow_list_is_refused() {
    let m = metadata(JWT_AUTHN_NAMESPACE, json!({"payload": payload()}));
    let config = JwtAuthnConfig {
        issuers: vec!["https://other.example.test".into()],
        ..JwtAuthnConfig::default()
    };
    assert_eq!(config.read(&m, 16).unwrap_err().http_status(), 401);
}

#[test]
fn jwt_authn_payload_that_is_not_an_object_is_refused() {
    let m = metadata(JWT_AUTHN_NAMESPACE, json!({"payload": "eyJ..."}));
    assert!(JwtAuthnConfig::default().read(&m, 16).is_err());
}

#[test]
fn other_namespaces_are_not_read() {
    let m = metadata("envoy.filters.http.lua", json!({"payload": payload()}));
    assert!(JwtAuthnConfig::default().read(&m, 16).unwrap().is_empty());
}

#[test]
fn typed_metadata_wins_over_untyped_for_the_same_namespace() {
    let mut m = metadata(JWT_AUTHN_NAMESPACE, json!({"payload": payload()}));
    let mut bob = payload();
    bob["sub"] = json!("bob");
    let typed = Any {
        type_url: STRUCT_TYPE_URL.into(),
        value: pb_struct(&json!({"payload": bob})).encode_to_vec(),
    };
    m.typed_filter_metadata
        .insert(JWT_AUTHN_NAMESPACE.into(), typed);
    assert_eq!(
        JwtAuthnConfig::default().read(&m, 16).unwrap()[0].0.name,
        "bob"
    );
}

#[test]
fn ext_authz_metadata_reads_the_preset_keys() {
    let m = metadata(
        EXT_AUTHZ_NAMESPACE,
        json!({"remote-user": "alice", "remote-groups": "staff, ops", "remote-email": "a@x.test"}),
    );
    let user = ExtAuthzMetadataConfig::default()
        .read(&m, 16)
        .unwrap()
        .unwrap();
    assert_eq!(user.groups, vec!["staff", "ops"]);
    assert_eq!(user.email.as_deref(), Some("a@x.test"));
    assert_eq!(user.source.name(), "ext-authz-metadata");
}

#[test]
fn ext_authz_metadata_groups_may_be_a_list() {
    let config = ExtAuthzMetadataConfig {
        preset: Preset::Authentik,
        ..ExtAuthzMetadataConfig::default()
    };
    let fields = json!({"x-authentik-username": "alice", "x-authentik-groups": ["a", "b", "a"]});
    let user = config.read(&metadata(EXT_AUTHZ_NAMESPACE, fields), 16);
    assert_eq!(user.unwrap().unwrap().groups, vec!["a", "b"]);
}

#[test]
fn ext_authz_metadata_user_that_is_not_a_string_is_refused() {
    let m = metadata(
        EXT_AUTHZ_NAMESPACE,
        json!({"remote-user": ["alice", "bob"]}),
    );
    let err = ExtAuthzMetadataConfig::default().read(&m, 16).unwrap_err();
    assert_eq!(err.http_status(), 401);
}

#[test]
fn too_many_metadata_groups_deny_with_431() {
    let groups: Vec<String> = (0..5).map(|i| format!("g{i}")).collect();
    let m = metadata(
        EXT_AUTHZ_NAMESPACE,
        json!({"remote-user": "a", "remote-groups": groups}),
    );
    let err = ExtAuthzMetadataConfig::default().read(&m, 4).unwrap_err();
    assert_eq!(err.http_status(), 431);
}

#[test]
fn whole_numbers_stay_integers_and_fractions_stay_floats() {
    assert_eq!(number(1_700_000_000.0), json!(1_700_000_000));
    assert_eq!(number(1.5), json!(1.5));
}
