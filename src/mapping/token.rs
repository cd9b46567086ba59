//! `context.jwt`: the claims of the verified token that named the user, as
//! a Cedar record, so policies can demand a scope, an audience, a second
//! factor (`amr`), an assurance level (`acr`) or a fresh login
//! (`auth_time`, `iat`).
//!
//! Which token counts, and whether it is valid, is the identity module's
//! call; this module only converts. Optional claims are left out, never
//! `""`; list claims are always present, possibly empty.

use std::time::{Duration, SystemTime};

use super::cedar::{self, string, Value};
use super::{context::datetime, MappingError};
use crate::identity::TokenClaims;

/// 9999-12-31T23:59:59Z: Cedar's `datetime` cannot express later times.
const LAST_DATETIME_SECS: i64 = 253_402_300_799;

/// The `jwt` record of the context.
pub fn record(token: &TokenClaims) -> Result<Value, MappingError> {
    let mut pairs = vec![
        ("iss", string(&token.issuer)),
        ("aud", set(&token.audience)),
        ("scopes", set(&token.scopes)),
        ("amr", set(&token.amr)),
    ];
    let optional = [
        ("sub", &token.subject),
        ("acr", &token.acr),
        ("azp", &token.azp),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            pairs.push((key, string(value)));
        }
    }
    let times = [
        ("exp", token.expires_at),
        ("iat", token.issued_at),
        ("auth_time", token.auth_time),
    ];
    for (key, secs) in times {
        if let Some(at) = secs.and_then(time) {
            pairs.push((key, at?));
        }
    }
    Ok(cedar::record(pairs))
}

fn set(items: &[String]) -> Value {
    cedar::set(items.iter().map(|i| string(i)))
}

/// A NumericDate as a Cedar `datetime`; out of Cedar's range is left out.
fn time(secs: i64) -> Option<Result<Value, MappingError>> {
    let secs = u64::try_from(secs)
        .ok()
        .filter(|s| *s <= LAST_DATETIME_SECS as u64)?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    Some(super::extension::datetime(datetime(at)))
}
