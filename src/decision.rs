//! The decision: Cedar's answer, made fail-closed, with the HTTP status a
//! client should see.
//!
//! A deny is data, never an error. Cedar skips a policy whose evaluation
//! errors, which would let a request through a broken forbid; by default any
//! evaluation error therefore denies. Building the CheckResponse from a
//! decision is left to the response module.

use cedar_policy::{AuthorizationError, Decision as CedarDecision, PolicyId};

use crate::config::{DecisionConfig, OnEvaluationError};
use crate::mapping::CedarRequest;
use crate::policy::PolicyStore;

/// Why a request was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyKind {
    /// No permit applied (Cedar's default deny).
    NoPermit,
    /// A forbid applied.
    Forbidden,
    /// A policy failed to evaluate and errors deny.
    EvaluationError,
    /// The request was malformed or ambiguous; no policy ran.
    Refused,
    /// The server could not build the Cedar request.
    Internal,
}

impl DenyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoPermit => "no_permit",
            Self::Forbidden => "forbidden",
            Self::EvaluationError => "evaluation_error",
            Self::Refused => "refused",
            Self::Internal => "internal",
        }
    }
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `None` for allow.
    pub deny: Option<DenyKind>,
    /// 200 on allow; the status the client sees on deny.
    pub http_status: u16,
    /// Policies that determined the decision (for an evaluation-error deny,
    /// the policies that failed).
    pub policies: Vec<String>,
    /// Evaluation errors, each naming its policy.
    pub errors: Vec<String>,
    /// Message for the client; never names a policy.
    pub message: String,
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        self.deny.is_none()
    }

    /// A deny for a request refused before Cedar ran.
    pub fn refused(http_status: u16, reason: &str) -> Self {
        Self::denied(DenyKind::Refused, http_status, reason.to_owned())
    }

    /// A deny for a request the server could not map.
    pub fn internal() -> Self {
        Self::denied(DenyKind::Internal, 403, "access denied".into())
    }

    fn denied(kind: DenyKind, http_status: u16, message: String) -> Self {
        Self {
            deny: Some(kind),
            http_status,
            policies: Vec::new(),
            errors: Vec::new(),
            message,
        }
    }
}

/// Evaluates a Cedar request against a store: only the candidate
/// policies of its index when `config.policy_index` is on, else all.
pub fn decide(
    request: &CedarRequest,
    store: &PolicyStore,
    anonymous: bool,
    config: &DecisionConfig,
) -> Decision {
    let (cedar, entities) = (&request.request, &request.entities);
    let response = if config.policy_index {
        store.index.is_authorized(cedar, entities)
    } else {
        store.index.is_authorized_by_all(cedar, entities)
    };
    let on_error = config.on_evaluation_error;
    let diagnostics = response.diagnostics();
    let errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
    let mut policies: Vec<PolicyId> = diagnostics.reason().cloned().collect();
    policies.sort();
    if !errors.is_empty() && on_error == OnEvaluationError::Deny {
        let failed = diagnostics.errors().map(failed_policy).collect();
        return Decision {
            policies: failed,
            errors,
            ..Decision::denied(DenyKind::EvaluationError, 403, "access denied".into())
        };
    }
    let names = policies.iter().map(ToString::to_string).collect();
    if response.decision() == CedarDecision::Allow {
        return Decision {
            deny: None,
            http_status: 200,
            policies: names,
            errors,
            message: String::new(),
        };
    }
    let mut decision = deny_for(&policies, store, anonymous);
    decision.policies = names;
    decision.errors = errors;
    decision
}

fn failed_policy(error: &AuthorizationError) -> String {
    match error {
        AuthorizationError::PolicyEvaluationError(e) => e.policy_id().to_string(),
    }
}

/// Status and message of a Cedar deny: a forbid's annotation if it has
/// one, 401 for a caller with no identity, else 403.
fn deny_for(policies: &[PolicyId], store: &PolicyStore, anonymous: bool) -> Decision {
    let kind = if policies.is_empty() {
        DenyKind::NoPermit
    } else {
        DenyKind::Forbidden
    };
    let annotated = policies
        .iter()
        .find_map(|id| store.deny_annotations.get(id));
    let default_status = if anonymous { 401 } else { 403 };
    let status = annotated
        .and_then(|a| a.http_status)
        .unwrap_or(default_status);
    let message = annotated
        .and_then(|a| a.message.clone())
        .unwrap_or_else(|| default_message(status).into());
    Decision::denied(kind, status, message)
}

fn default_message(status: u16) -> &'static str {
    match status {
        401 => "authentication required",
        _ => "access denied",
    }
}
