//! Explanations: the mapped Cedar request and the decision with its reasons,
//! as the Explain RPC and the `check` command show them.
//!
//! Nothing here decides; it renders an [`Outcome`] that
//! [`crate::authorize::evaluate`] produced on the serving code path.

use cedar_policy::EntityUid;

use crate::authorize::Outcome;
use crate::server::pb::ExplainResponse;

/// Renders an outcome for the Explain RPC.
pub fn explain(outcome: &Outcome) -> ExplainResponse {
    let decision = &outcome.decision;
    let cedar = outcome.cedar.as_ref();
    let json = |v: Option<serde_json::Value>| v.map_or_else(String::new, |v| v.to_string());
    ExplainResponse {
        decision: if decision.is_allow() { "allow" } else { "deny" }.into(),
        http_status: u32::from(decision.http_status),
        determining_policies: decision.policies.clone(),
        errors: decision.errors.clone(),
        refusal: outcome
            .refusal
            .clone()
            .or_else(|| outcome.fault.clone())
            .unwrap_or_default(),
        principal: json(cedar.map(|c| uid_json(&c.principal))),
        action: json(cedar.map(|c| uid_json(&c.action))),
        resource: json(cedar.map(|c| uid_json(&c.resource))),
        context_json: json(cedar.and_then(|c| c.context.clone().to_json_value().ok())),
        entities_json: json(cedar.and_then(|c| c.entities.to_json_value().ok())),
        identity_source: outcome
            .identity
            .as_ref()
            .map_or("none", |i| i.source())
            .into(),
        identity_trusted: outcome.identity.as_ref().is_some_and(|i| i.trusted),
        policy_set_version: outcome.version.clone(),
    }
}

/// An entity reference in Cedar's JSON form, the one representation used
/// in explanations, logs and spans.
pub fn uid_json(uid: &EntityUid) -> serde_json::Value {
    serde_json::json!({
        "type": uid.type_name().to_string(),
        "id": uid.id().unescaped(),
    })
}

/// Renders an outcome as one JSON document, for the command line.
pub fn to_json(outcome: &Outcome) -> serde_json::Value {
    let e = explain(outcome);
    let parse = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "decision": e.decision,
        "http_status": e.http_status,
        "determining_policies": e.determining_policies,
        "errors": e.errors,
        "refusal": e.refusal,
        "principal": parse(&e.principal),
        "action": parse(&e.action),
        "resource": parse(&e.resource),
        "context": parse(&e.context_json),
        "entities": parse(&e.entities_json),
        "identity_source": e.identity_source,
        "identity_trusted": e.identity_trusted,
        "policy_set_version": e.policy_set_version,
    })
}
