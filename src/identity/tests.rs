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
    let id = resolve(&config(), "spiffe://cluster.local/ns/app/sa/web", &h, None).unwrap();
    assert!(!id.trusted);
    assert!(matches!(id.principal, Principal::Workload(_)));
    assert_eq!(id.ignored_headers, vec!["remote-user", "remote-groups"]);
}

#[test]
fn identity_headers_without_any_peer_are_ignored() {
    let h = headers(&[("remote-user", "alice")]);
    let id = resolve(&config(), "", &h, None).unwrap();
    assert_eq!(id.principal, Principal::Anonymous);
}

#[test]
fn trusted_forwarder_headers_name_the_user() {
    let h = headers(&[("remote-user", "alice"), ("remote-groups", "admins, dev")]);
    let id = resolve(&config(), GATEWAY, &h, None).unwrap();
    assert_eq!(user(&id).groups, vec!["admins", "dev"]);
    assert_eq!(id.source(), "authelia");
    assert_eq!(id.peer.as_ref().unwrap().id, GATEWAY);
}

#[test]
fn trusted_forwarder_without_user_is_anonymous_not_itself() {
    let id = resolve(&config(), GATEWAY, &headers(&[]), None).unwrap();
    assert_eq!(id.principal, Principal::Anonymous);
}

#[test]
fn declared_stripping_proxy_trusts_headers_from_any_peer() {
    let mut c = config();
    c.headers_stripped_by_proxy = true;
    let id = resolve(&c, "", &headers(&[("remote-user", "alice")]), None).unwrap();
    assert_eq!(user(&id).name, "alice");
}

#[test]
fn repeated_user_header_is_ambiguous() {
    let h = headers(&[("remote-user", "alice,bob")]);
    let err = resolve(&config(), GATEWAY, &h, None).unwrap_err();
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
    let id = resolve(&config(), GATEWAY, &h, None).unwrap();
    assert_eq!(user(&id).groups, vec!["admins", "developers"]);
    assert_eq!(id.source(), "authentik");
}

#[test]
fn two_trusted_sources_naming_different_users_conflict() {
    let h = headers(&[("remote-user", "alice"), ("x-authentik-username", "bob")]);
    let err = resolve(&config(), GATEWAY, &h, None).unwrap_err();
    assert!(matches!(err, IdentityError::Conflict { .. }));
}

#[test]
fn too_many_groups_deny_with_431() {
    let mut c = config();
    c.max_groups = 2;
    let h = headers(&[("remote-user", "a"), ("remote-groups", "x,y,z")]);
    assert_eq!(
        resolve(&c, GATEWAY, &h, None).unwrap_err().http_status(),
        431
    );
}

#[test]
fn non_ascii_names_are_kept_byte_for_byte() {
    let h = headers(&[("remote-user", "иван")]);
    assert_eq!(
        user(&resolve(&config(), GATEWAY, &h, None).unwrap()).name,
        "иван"
    );
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

mod sources {
    //! Several sources in one request: priority, agreement and conflicts.

    use envoy_types::pb::envoy::config::core::v3::Metadata;
    use serde_json::json;

    use super::*;
    use crate::identity::jwt::AssertionSource;
    use crate::identity::metadata::tests::pb_struct;
    use crate::identity::metadata::JwtAuthnConfig;
    use crate::identity::testing::{assertion, good_claims, TestKey};

    const WEB: &str = "spiffe://cluster.local/ns/app/sa/web";

    /// A config trusting GATEWAY's headers, a Pomerium assertion signed by
    /// `key`, and jwt_authn payloads.
    fn all_sources(key: &TestKey) -> IdentityConfig {
        IdentityConfig {
            jwt_assertions: vec![assertion(AssertionSource::Pomerium, &[key])],
            jwt_authn: Some(JwtAuthnConfig::default()),
            ..config()
        }
    }

    fn jwt_authn(sub: &str) -> Metadata {
        let payload = json!({"iss": "https://mesh-idp.test", "sub": sub, "groups": ["mesh"]});
        let fields = pb_struct(&json!({ "payload": payload }));
        Metadata {
            filter_metadata: [("envoy.filters.http.jwt_authn".to_owned(), fields)].into(),
            ..Default::default()
        }
    }

    fn token(key: &TestKey, email: &str) -> String {
        let mut claims = good_claims();
        claims["email"] = json!(email);
        key.sign(&claims)
    }

    #[test]
    fn verified_token_outranks_metadata_and_headers_that_agree() {
        let key = TestKey::es256("k1");
        let jwt = token(&key, "alice");
        let h = headers(&[("x-pomerium-jwt-assertion", &jwt), ("remote-user", "alice")]);
        let id = resolve(&all_sources(&key), GATEWAY, &h, Some(&jwt_authn("alice"))).unwrap();
        assert_eq!(id.source(), "pomerium");
        assert_eq!(user(&id).groups, vec!["staff", "admins"]);
        assert_eq!(id.token.as_ref().unwrap().amr, vec!["pwd", "otp"]);
    }

    #[test]
    fn metadata_outranks_gated_headers_that_agree() {
        let key = TestKey::es256("k1");
        let h = headers(&[("remote-user", "alice"), ("remote-groups", "hdr")]);
        let id = resolve(&all_sources(&key), GATEWAY, &h, Some(&jwt_authn("alice"))).unwrap();
        assert_eq!(id.source(), "jwt-authn");
        assert_eq!(user(&id).groups, vec!["mesh"]);
    }

    #[test]
    fn token_and_header_naming_different_people_conflict_naming_both() {
        let key = TestKey::es256("k1");
        let jwt = token(&key, "alice");
        let h = headers(&[("x-pomerium-jwt-assertion", &jwt), ("remote-user", "bob")]);
        let err = resolve(&all_sources(&key), GATEWAY, &h, None).unwrap_err();
        assert_eq!(err.http_status(), 403);
        let text = err.to_string();
        assert!(text.contains("`alice` (pomerium)") && text.contains("`bob` (authelia)"));
    }

    #[test]
    fn metadata_and_header_naming_different_people_conflict() {
        let key = TestKey::es256("k1");
        let h = headers(&[("remote-user", "bob")]);
        let err = resolve(&all_sources(&key), GATEWAY, &h, Some(&jwt_authn("alice")));
        assert!(matches!(err, Err(IdentityError::Conflict { .. })));
    }

    #[test]
    fn token_and_metadata_naming_different_people_conflict() {
        let key = TestKey::es256("k1");
        let h = headers(&[("x-pomerium-jwt-assertion", &token(&key, "alice"))]);
        let err = resolve(&all_sources(&key), WEB, &h, Some(&jwt_authn("mallory")));
        assert_eq!(err.unwrap_err().http_status(), 403);
    }

    #[test]
    fn untrusted_headers_cannot_conflict_with_a_token() {
        let key = TestKey::es256("k1");
        let h = headers(&[
            ("x-pomerium-jwt-assertion", &token(&key, "alice")),
            ("remote-user", "bob"),
        ]);
        let id = resolve(&all_sources(&key), WEB, &h, None).unwrap();
        assert_eq!(user(&id).name, "alice");
        assert_eq!(id.ignored_headers, vec!["remote-user"]);
    }

    #[test]
    fn invalid_token_denies_401_even_beside_trusted_headers() {
        let key = TestKey::es256("k1");
        let forged = token(&TestKey::es256("k1"), "alice");
        let h = headers(&[
            ("x-pomerium-jwt-assertion", &forged),
            ("remote-user", "alice"),
        ]);
        let err = resolve(&all_sources(&key), GATEWAY, &h, None).unwrap_err();
        assert_eq!(err.http_status(), 401);
    }

    #[test]
    fn human_principal_keeps_the_workload_peer_and_counts_as_trusted() {
        let key = TestKey::es256("k1");
        let id = resolve(
            &all_sources(&key),
            WEB,
            &headers(&[]),
            Some(&jwt_authn("alice")),
        )
        .unwrap();
        assert_eq!(user(&id).name, "alice");
        assert_eq!(id.peer.as_ref().unwrap().id, WEB);
        assert!(id.trusted);
    }

    #[test]
    fn workload_is_the_principal_when_no_source_names_a_person() {
        let key = TestKey::es256("k1");
        let id = resolve(
            &all_sources(&key),
            WEB,
            &headers(&[]),
            Some(&Metadata::default()),
        );
        assert!(matches!(id.unwrap().principal, Principal::Workload(_)));
    }

    #[test]
    fn oauth2_proxy_auth_request_preset_reads_x_auth_request_headers() {
        let c = IdentityConfig {
            presets: vec![Preset::Oauth2ProxyAuthRequest],
            ..config()
        };
        let h = headers(&[
            ("x-auth-request-user", "alice"),
            ("x-auth-request-groups", "a,b"),
        ]);
        let id = resolve(&c, GATEWAY, &h, None).unwrap();
        assert_eq!(user(&id).groups, vec!["a", "b"]);
        assert_eq!(id.source(), "oauth2-proxy-auth-request");
    }
}
