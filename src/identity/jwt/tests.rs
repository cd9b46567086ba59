//! Unit tests of assertion verification: one test per way a token can be
//! wrong, for every source, with keys generated in the test.

use std::collections::HashMap;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

use super::*;
use crate::identity::testing::{assertion, good_claims, now, TestKey};
use crate::request::headers::HeaderLimits;

const SOURCES: [AssertionSource; 4] = [
    AssertionSource::Authentik,
    AssertionSource::Pomerium,
    AssertionSource::CloudflareAccess,
    AssertionSource::GoogleIap,
];

fn source(kind: AssertionSource, keys: &[&TestKey]) -> AssertionConfig {
    assertion(kind, keys)
}

fn headers(name: &str, value: &str) -> Headers {
    let map: HashMap<String, String> = [(name.to_owned(), value.to_owned())].into();
    let limits = HeaderLimits {
        max_headers: 8,
        max_header_bytes: 16 * 1024,
    };
    Headers::read(&map, None, limits).unwrap()
}

/// Reads `token` from `config`'s header, for a status or a user.
fn read(
    config: &AssertionConfig,
    token: &str,
) -> Result<Option<(User, TokenClaims)>, IdentityError> {
    config.read(&headers(config.header(), token), 16)
}

fn status(config: &AssertionConfig, token: &str) -> u16 {
    read(config, token).unwrap_err().http_status()
}

fn with(changes: Value) -> Value {
    let mut claims = good_claims();
    for (k, v) in changes.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

#[test]
fn good_token_names_the_user_for_every_source() {
    let key = TestKey::es256("k1");
    for kind in SOURCES {
        let config = source(kind, &[&key]);
        let (user, claims) = read(&config, &key.sign(&good_claims())).unwrap().unwrap();
        assert_eq!(user.name, "alice", "{kind:?}");
        assert_eq!(user.source, Source::Assertion(kind));
        assert_eq!(user.uid.as_deref(), Some("u-123"));
        assert_eq!(claims.amr, vec!["pwd", "otp"]);
    }
}

#[test]
fn groups_come_from_the_groups_claim_where_the_source_has_one() {
    let key = TestKey::es256("k1");
    let token = key.sign(&good_claims());
    let pomerium = read(&source(AssertionSource::Pomerium, &[&key]), &token);
    assert_eq!(pomerium.unwrap().unwrap().0.groups, vec!["staff", "admins"]);
    let iap = read(&source(AssertionSource::GoogleIap, &[&key]), &token);
    assert!(iap.unwrap().unwrap().0.groups.is_empty());
}

#[test]
fn expired_token_is_refused_for_every_source() {
    let key = TestKey::es256("k1");
    let token = key.sign(&with(json!({"exp": now() - 600})));
    for kind in SOURCES {
        assert_eq!(status(&source(kind, &[&key]), &token), 401, "{kind:?}");
    }
}

#[test]
fn expiry_within_the_leeway_is_tolerated_beyond_it_refused() {
    let key = TestKey::es256("k1");
    let config = source(AssertionSource::Pomerium, &[&key]);
    assert!(read(&config, &key.sign(&with(json!({"exp": now() - 5})))).is_ok());
    assert_eq!(
        status(&config, &key.sign(&with(json!({"exp": now() - 60})))),
        401
    );
}

#[test]
fn not_yet_valid_token_is_refused() {
    let key = TestKey::es256("k1");
    let token = key.sign(&with(json!({"nbf": now() + 600})));
    assert_eq!(
        status(&source(AssertionSource::GoogleIap, &[&key]), &token),
        401
    );
}

#[test]
fn exp_of_the_wrong_type_is_refused_not_ignored() {
    let key = TestKey::es256("k1");
    let config = source(AssertionSource::Pomerium, &[&key]);
    for changes in [json!({"exp": "never"}), json!({"nbf": "99999999999"})] {
        assert_eq!(status(&config, &key.sign(&with(changes))), 401);
    }
    let mut no_exp = good_claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(status(&config, &key.sign(&no_exp)), 401);
}

#[test]
fn wrong_audience_is_refused_for_every_source() {
    let key = TestKey::es256("k1");
    let token = key.sign(&with(json!({"aud": "other-app.example.test"})));
    for kind in SOURCES {
        assert_eq!(status(&source(kind, &[&key]), &token), 401, "{kind:?}");
    }
}

#[test]
fn wrong_issuer_is_refused() {
    let key = TestKey::es256("k1");
    let token = key.sign(&with(json!({"iss": "https://evil.example.test"})));
    assert_eq!(
        status(&source(AssertionSource::Authentik, &[&key]), &token),
        401
    );
}

#[test]
fn token_signed_by_another_key_is_refused_for_every_source() {
    let trusted = TestKey::es256("k1");
    // Same key id, different key: what a forger would try.
    let forger = TestKey::es256("k1");
    let token = forger.sign(&good_claims());
    for kind in SOURCES {
        assert_eq!(status(&source(kind, &[&trusted]), &token), 401, "{kind:?}");
    }
}

#[test]
fn alg_none_token_is_refused_for_every_source() {
    let key = TestKey::es256("k1");
    // {"alg":"none","typ":"JWT","kid":"k1"}, base64url.
    const NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIiwia2lkIjoiazEifQ";
    let payload = key
        .sign(&good_claims())
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let unsigned = format!("{NONE_HEADER}.{payload}.");
    for kind in SOURCES {
        assert_eq!(status(&source(kind, &[&key]), &unsigned), 401, "{kind:?}");
    }
}

#[test]
fn hmac_token_keyed_with_the_public_key_is_refused() {
    // Algorithm confusion: sign HS256 with the public JWK's bytes.
    let key = TestKey::es256("k1");
    let public = serde_json::to_vec(&key.jwk).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let secret = EncodingKey::from_secret(&public).unwrap();
    let token = jsonwebtoken::encode(&header, &good_claims(), &secret).unwrap();
    assert_eq!(
        status(&source(AssertionSource::Pomerium, &[&key]), &token),
        401
    );
}

#[test]
fn tampered_payload_is_refused() {
    let key = TestKey::es256("k1");
    let token = key.sign(&good_claims());
    let other = key.sign(&with(json!({"email": "mallory"})));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).unwrap(),
        parts[2]
    );
    assert_eq!(
        status(&source(AssertionSource::Pomerium, &[&key]), &forged),
        401
    );
}

#[test]
fn unknown_key_id_is_refused_and_asks_for_a_reload() {
    let key = TestKey::es256("k1");
    let config = source(AssertionSource::Pomerium, &[&key]);
    let rotated = TestKey::es256("k2");
    let err = read(&config, &rotated.sign(&good_claims())).unwrap_err();
    assert!(err.to_string().contains("`k2`"), "{err}");
}

#[test]
fn eddsa_keys_verify_when_allowed() {
    let key = TestKey::ed25519("ed");
    let config = source(AssertionSource::Authentik, &[&key]);
    assert!(read(&config, &key.sign(&good_claims())).unwrap().is_some());
}

#[test]
fn algorithm_outside_the_allowed_list_is_refused() {
    let key = TestKey::ed25519("ed");
    let mut config = source(AssertionSource::Authentik, &[&key]);
    config.algorithms = vec![Algorithm::ES256];
    assert_eq!(status(&config, &key.sign(&good_claims())), 401);
}

#[test]
fn missing_user_claim_is_refused() {
    let key = TestKey::es256("k1");
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove("email");
    assert_eq!(
        status(
            &source(AssertionSource::CloudflareAccess, &[&key]),
            &key.sign(&claims)
        ),
        401
    );
}

#[test]
fn absent_header_is_no_identity_and_empty_header_is_refused() {
    let key = TestKey::es256("k1");
    let config = source(AssertionSource::Pomerium, &[&key]);
    assert!(config.read(&headers("x-other", "1"), 16).unwrap().is_none());
    assert_eq!(status(&config, " "), 401);
    assert_eq!(status(&config, "not.a.jwt"), 401);
}

#[test]
fn no_loaded_keys_refuses_every_token() {
    let key = TestKey::es256("k1");
    let config = source(AssertionSource::Pomerium, &[&key]);
    config.keys.store(keys::KeySet::default());
    assert_eq!(status(&config, &key.sign(&good_claims())), 401);
}

#[test]
fn error_messages_never_contain_the_token() {
    let key = TestKey::es256("k1");
    let token = key.sign(&with(json!({"exp": now() - 600})));
    let err = read(&source(AssertionSource::Pomerium, &[&key]), &token).unwrap_err();
    let signature = token.rsplit('.').next().unwrap();
    assert!(!err.to_string().contains(signature));
}

fn parse_config(yaml: &str) -> Result<(), String> {
    let mut config: AssertionConfig = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
    config.prepare(std::path::Path::new("/"))
}

#[test]
fn shared_secret_and_none_algorithms_are_refused_at_load() {
    let base = "source: pomerium\nissuer: i\naudience: [a]\njwks_url: https://x.test/j\n";
    for algs in ["[HS256]", "[ES256, HS512]", "[none]"] {
        let yaml = format!("{base}algorithms: {algs}\n");
        assert!(parse_config(&yaml).is_err(), "{algs} accepted");
    }
}

#[test]
fn issuer_audience_and_one_key_location_are_required() {
    let cases = [
        "source: pomerium\nissuer: \"\"\naudience: [a]\njwks_url: https://x.test/j\n",
        "source: pomerium\nissuer: i\naudience: []\njwks_url: https://x.test/j\n",
        "source: pomerium\nissuer: i\naudience: [a]\n",
        "source: pomerium\nissuer: i\naudience: [a]\njwks_url: https://x.test/j\njwks_file: k.json\n",
    ];
    for yaml in cases {
        assert!(parse_config(yaml).is_err(), "{yaml}");
    }
}

#[test]
fn plain_http_key_url_is_refused_unless_loopback() {
    assert!(keys::check_url("http://idp.example.test/jwks").is_err());
    assert!(keys::check_url("ftp://idp.example.test/jwks").is_err());
    for ok in [
        "https://idp.example.test/jwks",
        "http://127.0.0.1:8080/j",
        "http://[::1]/j",
    ] {
        assert!(keys::check_url(ok).is_ok(), "{ok}");
    }
}

#[test]
fn symmetric_and_encryption_keys_in_a_jwks_are_skipped() {
    let doc = json!({"keys": [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "s"},
        {"kty": "EC", "crv": "P-256", "use": "enc", "kid": "e",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
         "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "unknown", "kid": "u"}
    ]});
    let parsed = keys::KeySet::parse(doc.to_string().as_bytes());
    assert!(matches!(parsed, Err(keys::KeyError::NoUsableKey)));
}
