//! Unit tests of the trust gate and header parsing.

use std::collections::HashMap;

use super::*;
use crate::request::headers::HeaderLimits;

const GATEWAY: &str = "spiffe://cluster.local/ns/istio-system/sa/ingress";
const LIMITS: HeaderLimits = HeaderLimits {
    max_headers: 64,
    max_header_bytes: 4096,
};

fn config() -> IdentityConfig {
    IdentityConfig {
        trusted_forwarders: vec![GATEWAY.into()],
        ..IdentityConfig::default()
    }
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Headers::read(&map, None, LIMITS).unwrap()
}

fn user(identity: &Identity) -> &User {
    match &identity.principal {
        Principal::User(u) => u,
        other => panic!("expected a user, got {other:?}"),
    }
}

#[test]
fn identity_headers_from_untrusted_peer_are_ignored() {
    let h = headers(&[("remote-user", "alice"), ("remote-groups", "admins")]);
    let id = resolve(&config(), "spiffe://cluster.local/ns/app/sa/web", &h).unwrap();
    assert!(!id.trusted);
    assert!(matches!(id.principal, Principal::Workload(_)));
    assert_eq!(id.ignored_headers, vec!["remote-user", "remote-groups"]);
}

#[test]
fn identity_headers_without_any_peer_are_ignored() {
    let h = headers(&[("remote-user", "alice")]);
    let id = resolve(&config(), "", &h).unwrap();
    assert_eq!(id.principal, Principal::Anonymous);
}

#[test]
fn trusted_forwarder_headers_name_the_user() {
    let h = headers(&[("remote-user", "alice"), ("remote-groups", "admins, dev")]);
    let id = resolve(&config(), GATEWAY, &h).unwrap();
    assert_eq!(user(&id).groups, vec!["admins", "dev"]);
    assert_eq!(id.source(), "authelia");
    assert_eq!(id.peer.as_ref().unwrap().id, GATEWAY);
}

#[test]
fn trusted_forwarder_without_user_is_anonymous_not_itself() {
    let id = resolve(&config(), GATEWAY, &headers(&[])).unwrap();
    assert_eq!(id.principal, Principal::Anonymous);
}

#[test]
fn declared_stripping_proxy_trusts_headers_from_any_peer() {
    let mut c = config();
    c.headers_stripped_by_proxy = true;
    let id = resolve(&c, "", &headers(&[("remote-user", "alice")])).unwrap();
    assert_eq!(user(&id).name, "alice");
}

#[test]
fn repeated_user_header_is_ambiguous() {
    let h = headers(&[("remote-user", "alice,bob")]);
    let err = resolve(&config(), GATEWAY, &h).unwrap_err();
    assert_eq!(err.http_status(), 400);
}

#[test]
fn group_lists_drop_empty_items_and_trim() {
    for (raw, want) in [
        ("", vec![]),
        (" ", vec![]),
        ("ops,,dev", vec!["ops", "dev"]),
        ("ops, dev,", vec!["ops", "dev"]),
        ("admins,dev", vec!["admins", "dev"]),
    ] {
        assert_eq!(split_list(Some(raw.into()), ','), want, "{raw:?}");
    }
}

#[test]
fn authentik_groups_split_on_pipe() {
    let h = headers(&[
        ("x-authentik-username", "alice"),
        ("x-authentik-groups", "admins|developers"),
    ]);
    let id = resolve(&config(), GATEWAY, &h).unwrap();
    assert_eq!(user(&id).groups, vec!["admins", "developers"]);
    assert_eq!(id.source(), "authentik");
}

#[test]
fn two_trusted_sources_naming_different_users_conflict() {
    let h = headers(&[("remote-user", "alice"), ("x-authentik-username", "bob")]);
    let err = resolve(&config(), GATEWAY, &h).unwrap_err();
    assert!(matches!(err, IdentityError::Conflict { .. }));
}

#[test]
fn too_many_groups_deny_with_431() {
    let mut c = config();
    c.max_groups = 2;
    let h = headers(&[("remote-user", "a"), ("remote-groups", "x,y,z")]);
    assert_eq!(resolve(&c, GATEWAY, &h).unwrap_err().http_status(), 431);
}

#[test]
fn non_ascii_names_are_kept_byte_for_byte() {
    let h = headers(&[("remote-user", "иван")]);
    assert_eq!(user(&resolve(&config(), GATEWAY, &h).unwrap()).name, "иван");
}

#[test]
fn spiffe_principal_missing_empty_or_not_spiffe_is_no_workload() {
    for id in [
        "",
        "urn:corp:host:web-1",
        "spiffe://",
        "spiffe:///ns/a",
        "SPIFFE://x/y",
    ] {
        assert!(parse_spiffe(id, &[]).is_none(), "{id:?}");
    }
    let w = parse_spiffe("spiffe://mesh.example.test/ns/monitoring/sa/prom", &[]).unwrap();
    assert_eq!(w.namespace.as_deref(), Some("monitoring"));
    assert_eq!(w.service_account.as_deref(), Some("prom"));
}

#[test]
fn spiffe_trust_domain_allow_list_is_enforced() {
    let domains = vec!["mesh.example.test".to_string()];
    assert!(parse_spiffe("spiffe://other.test/ns/a/sa/b", &domains).is_none());
    assert!(parse_spiffe("spiffe://mesh.example.test/ns/a/sa/b", &domains).is_some());
}
