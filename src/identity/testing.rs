//! Signing keys and tokens generated in tests, shared by the identity
//! module's unit tests.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::jwt::keys::KeySet;
use super::jwt::{AssertionConfig, AssertionSource};

pub const ISSUER: &str = "https://idp.example.test";
pub const AUDIENCE: &str = "app.example.test";

/// A signing key generated for one test, with its public JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
}

impl TestKey {
    pub fn es256(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Self::new(
            kid,
            Algorithm::ES256,
            EncodingKey::from_ec_der(&pair.serialize_der()),
        )
    }

    pub fn ed25519(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        // ring writes PKCS#8 v2; the signer reads v1: the same seed behind
        // the fixed v1 prefix.
        const V1_PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        let seed = &pair.serialize_der()[16..48];
        let der = [&V1_PREFIX[..], seed].concat();
        Self::new(kid, Algorithm::EdDSA, EncodingKey::from_ed_der(&der))
    }

    pub fn new(kid: &str, alg: Algorithm, encoding: EncodingKey) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.into());
        Self {
            kid: kid.into(),
            alg,
            encoding,
            jwk,
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// A JWKS document holding the public keys of `keys`.
pub fn jwks(keys: &[&TestKey]) -> Vec<u8> {
    let set = JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    };
    serde_json::to_vec(&set).unwrap()
}

/// Seconds since the epoch, as JWT NumericDates count.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims every source accepts: the right issuer and audience, valid for
/// an hour, naming alice in both the email and username claims.
pub fn good_claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "u-123",
        "exp": now() + 3600, "iat": now(), "nbf": now() - 5,
        "email": "alice", "preferred_username": "alice",
        "groups": ["staff", "admins"], "amr": ["pwd", "otp"],
    })
}

/// An assertion source trusting `keys`, accepting ES256 and EdDSA.
pub fn assertion(kind: AssertionSource, keys: &[&TestKey]) -> AssertionConfig {
    let mut config: AssertionConfig = serde_yaml_ng::from_str(&format!(
        "{{source: {}, issuer: \"{ISSUER}\", audience: [\"{AUDIENCE}\"], \
         jwks_url: \"https://idp.example.test/jwks\", algorithms: [ES256, EdDSA]}}",
        kind_name(kind)
    ))
    .unwrap();
    config.prepare(std::path::Path::new("/")).unwrap();
    config.keys.store(KeySet::parse(&jwks(keys)).unwrap());
    config
}

pub fn kind_name(kind: AssertionSource) -> &'static str {
    match kind {
        AssertionSource::Authentik => "authentik",
        AssertionSource::Pomerium => "pomerium",
        AssertionSource::CloudflareAccess => "cloudflare-access",
        AssertionSource::GoogleIap => "google-iap",
    }
}
