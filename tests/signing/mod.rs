//! Signing keys generated in a test, their JWKS documents and signed
//! tokens, for the identity tests (`mod signing;`).
#![allow(dead_code, reason = "each test crate uses a different part")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

/// An ES256 signing key made for one test, with its public JWK.
pub struct TestKey {
    pub kid: String,
    encoding: EncodingKey,
    pub jwk: Jwk,
}

impl TestKey {
    pub fn generate(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let encoding = EncodingKey::from_ec_der(&pair.serialize_der());
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some(kid.into());
        Self {
            kid: kid.into(),
            encoding,
            jwk,
        }
    }

    /// A token with these claims, signed ES256 and naming this key's id.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(claims, |_| {})
    }

    /// As `sign`, after `edit` changed the token header.
    pub fn sign_with(&self, claims: &Value, edit: impl FnOnce(&mut Header)) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        edit(&mut header);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// A JWKS document with the public keys of `keys`.
pub fn jwks(keys: &[&TestKey]) -> String {
    let set = JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    };
    serde_json::to_string(&set).unwrap()
}

/// Seconds since the epoch, as JWT NumericDates count.
pub fn now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_secs()).unwrap()
}
