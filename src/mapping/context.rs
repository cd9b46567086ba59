//! The Cedar `context` record of one request.
//!
//! Keys are fixed and documented in the README's mapping table; optional
//! facts are omitted rather than set to an empty value, so policies test
//! them with `has`. Header values enter only through the configured
//! allow-list, which refuses credential headers at load.

use std::time::SystemTime;

use cedar_policy::Context;

use super::cedar::{self, string, Value};
use super::MappingError;
use crate::config::RequestConfig;
use crate::identity::{Identity, Workload};
use crate::request::{HttpFacts, Kind, RequestFacts};

type Pairs = Vec<(&'static str, Value)>;

/// Builds the context record.
pub fn build(
    facts: &RequestFacts,
    identity: &Identity,
    config: &RequestConfig,
) -> Result<Context, MappingError> {
    let mut pairs: Pairs = Vec::new();
    let kind = match facts.kind {
        Kind::Http => "http",
        Kind::Network => "network",
    };
    push(&mut pairs, "kind", string(kind));
    if let Some(http) = &facts.http {
        http_pairs(&mut pairs, http);
    }
    let headers = config
        .context_headers
        .iter()
        .filter_map(|name| Some((name.as_str(), string(&facts.headers.get(name)?))));
    push(&mut pairs, "headers", cedar::record(headers));
    let ext = facts
        .context_extensions
        .iter()
        .map(|(k, v)| (k.as_str(), string(v)));
    push(&mut pairs, "ext", cedar::record(ext));
    peer_pairs(&mut pairs, facts, identity.peer.as_ref())?;
    push(
        &mut pairs,
        "time",
        super::extension::datetime(datetime(facts.time))?,
    );
    push(&mut pairs, "identity_source", string(identity.source()));
    push(
        &mut pairs,
        "identity_trusted",
        cedar::boolean(identity.trusted),
    );
    if let Some(token) = &identity.token {
        push(&mut pairs, "jwt", super::token::record(token)?);
    }
    Ok(cedar::context(pairs))
}

fn push(pairs: &mut Pairs, key: &'static str, value: Value) {
    pairs.push((key, value));
}

fn http_pairs(pairs: &mut Pairs, http: &HttpFacts) {
    push(pairs, "method", string(&http.method));
    push(pairs, "host", string(&http.host.name));
    push(pairs, "path", string(&http.path.path));
    if let Some(port) = http.host.port {
        push(pairs, "port", cedar::long(i64::from(port)));
    }
    // Names are unique after canonicalisation.
    let query = http.path.query.iter().map(|(k, v)| (k.as_str(), string(v)));
    push(pairs, "query", cedar::record(query));
    push(pairs, "body_partial", cedar::boolean(http.body_partial));
    if let Some(grpc) = &http.grpc {
        let call = [
            ("service", string(&grpc.service)),
            ("method", string(&grpc.method)),
        ];
        push(pairs, "grpc", cedar::record(call));
    }
}

fn peer_pairs(
    pairs: &mut Pairs,
    facts: &RequestFacts,
    peer: Option<&Workload>,
) -> Result<(), MappingError> {
    if let Some(address) = facts.source_address {
        // Fail closed: an address Cedar cannot express denies the request
        // rather than leaving `source_ip` out, which a `has` guard would
        // read as "no address" and skip an address-based forbid.
        push(pairs, "source_ip", super::extension::ip(address.ip())?);
    }
    if let Some(sni) = &facts.sni {
        push(pairs, "sni", string(sni));
    }
    let Some(peer) = peer else {
        return Ok(());
    };
    push(pairs, "spiffe_id", string(&peer.id));
    let mut parts = vec![("trust_domain", string(&peer.trust_domain))];
    if let Some(ns) = &peer.namespace {
        parts.push(("namespace", string(ns)));
    }
    if let Some(sa) = &peer.service_account {
        parts.push(("service_account", string(sa)));
    }
    push(pairs, "spiffe", cedar::record(parts));
    Ok(())
}

/// Formats a time as Cedar's `datetime` literal, to the second, UTC:
/// finer is no use to a policy and would defeat the value cache.
pub fn datetime(time: SystemTime) -> String {
    let at = time::OffsetDateTime::from(time);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_is_cedar_literal_form() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(datetime(t), "2023-11-14T22:13:20Z");
    }
}
