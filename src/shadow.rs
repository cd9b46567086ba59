//! Shadow policies: a second policy set evaluated beside the enforced one
//! for every request, so a new version is proven on live traffic before it
//! is switched on.
//!
//! The shadow decision is never enforced. Where it disagrees with the
//! enforced decision (allow versus deny, or another HTTP status) a
//! "shadow disagreement" event is logged and counted. Loading and reloading
//! the shadow folder is the reload module's job.

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use prost::Message;

use crate::authorize::{self, Outcome};
use crate::server::Shared;

/// Target of shadow events.
pub const SHADOW_TARGET: &str = "cedar_ext_authz::shadow";

/// Evaluates the shadow set, if any, and reports a disagreement.
pub fn compare(shared: &Shared, check: &CheckRequest, outcome: &Outcome) {
    let Some(shadow_set) = &shared.shadow else {
        return;
    };
    let store = shadow_set.load();
    let shadowed = authorize::evaluate(check, check.encoded_len(), &shared.config, &store);
    let (e, s) = (&outcome.decision, &shadowed.decision);
    let agree = e.is_allow() == s.is_allow() && e.http_status == s.http_status;
    crate::metrics::shadow_compared(agree);
    if agree {
        return;
    }
    let verdict = |allow: bool| if allow { "allow" } else { "deny" };
    tracing::warn!(
        target: SHADOW_TARGET,
        disagreement = true,
        enforced.decision = verdict(e.is_allow()),
        enforced.http_status = e.http_status,
        enforced.policies = %e.policies.join(","),
        enforced.version = %outcome.version,
        shadow.decision = verdict(s.is_allow()),
        shadow.http_status = s.http_status,
        shadow.policies = %s.policies.join(","),
        shadow.errors = %s.errors.join("; "),
        shadow.version = %shadowed.version,
        request.id = outcome.facts.as_ref().and_then(|f| f.request_id.as_deref()),
        http.path = outcome.facts.as_ref().and_then(|f| f.http.as_ref()).map(|h| h.path.path.as_str()),
        "shadow disagreement"
    );
}
