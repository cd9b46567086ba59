//! The decision as span attributes, after OpenTelemetry's rpc and http
//! semantic conventions plus `cedar.*` attributes.

use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::authorize::Outcome;

use super::exporting;

/// Puts the decision on the exported span: the checked request's HTTP
/// attributes, the Cedar request and answer, and an error status for a
/// fault (mapping failure or evaluation errors; a deny is not an error).
pub fn record_outcome(span: &Span, outcome: &Outcome, dry_run: bool) {
    if !exporting() {
        return;
    }
    let cx = span.context();
    let otel = cx.span();
    if !otel.is_recording() {
        return;
    }
    otel.set_attributes(outcome_attributes(outcome, dry_run));
    if let Some(status) = outcome_status(outcome) {
        otel.set_status(status);
    }
}

/// The span attributes of one outcome.
pub fn outcome_attributes(outcome: &Outcome, dry_run: bool) -> Vec<KeyValue> {
    let d = &outcome.decision;
    let mut attrs = Vec::with_capacity(24);
    attrs.push(KeyValue::new("rpc.grpc.status_code", 0_i64));
    if let Some(facts) = &outcome.facts {
        if let Some(http) = &facts.http {
            attrs.push(KeyValue::new("http.request.method", http.method.clone()));
            attrs.push(KeyValue::new("url.path", http.path.path.clone()));
            attrs.push(KeyValue::new("server.address", http.host.name.clone()));
        }
        if let Some(source) = facts.source_address {
            attrs.push(KeyValue::new("client.address", source.ip().to_string()));
            attrs.push(KeyValue::new("client.port", i64::from(source.port())));
        }
    }
    attrs.push(KeyValue::new(
        "http.response.status_code",
        i64::from(d.http_status),
    ));
    attrs.push(KeyValue::new(
        "cedar.decision",
        if d.is_allow() { "allow" } else { "deny" },
    ));
    if let Some(kind) = d.deny {
        attrs.push(KeyValue::new("cedar.deny_reason", kind.as_str()));
    }
    attrs.push(KeyValue::new("cedar.policies", string_array(&d.policies)));
    if !d.errors.is_empty() {
        attrs.push(KeyValue::new("cedar.errors", string_array(&d.errors)));
    }
    if let Some(cedar) = &outcome.cedar {
        attrs.push(KeyValue::new(
            "cedar.principal",
            cedar.principal.to_string(),
        ));
        attrs.push(KeyValue::new("cedar.action", cedar.action.to_string()));
        attrs.push(KeyValue::new("cedar.resource", cedar.resource.to_string()));
    }
    if let Some(identity) = &outcome.identity {
        attrs.push(KeyValue::new("cedar.identity.source", identity.source()));
        attrs.push(KeyValue::new("cedar.identity.trusted", identity.trusted));
    }
    if let Some(refusal) = &outcome.refusal {
        attrs.push(KeyValue::new("cedar.refusal", refusal.clone()));
    }
    attrs.push(KeyValue::new("cedar.dry_run", dry_run));
    attrs.push(KeyValue::new(
        "cedar.policy_set.version",
        outcome.version.clone(),
    ));
    attrs
}

/// `Error` for a fault, `None` (unset) otherwise.
pub fn outcome_status(outcome: &Outcome) -> Option<Status> {
    if let Some(fault) = &outcome.fault {
        return Some(Status::error(format!("cannot map the request: {fault}")));
    }
    let errors = &outcome.decision.errors;
    (!errors.is_empty())
        .then(|| Status::error(format!("{} policy evaluation error(s)", errors.len())))
}

fn string_array(items: &[String]) -> Value {
    Value::Array(Array::String(
        items.iter().map(|s| StringValue::from(s.clone())).collect(),
    ))
}
