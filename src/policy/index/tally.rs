//! Evaluating candidate policies and combining their results the way
//! Cedar's authorizer does: any satisfied forbid denies and determines the
//! answer; else any satisfied permit allows and determines it; else the
//! answer is a deny that no policy determined. A policy that errors counts
//! as not satisfied and its error is reported. Making errors deny is left
//! to the decision module.
//!
//! Each candidate is evaluated with cedar-policy-core's evaluator, instead
//! of building a policy set of the candidates for every request and asking
//! Cedar's authorizer: that set's maps cost more than the evaluation.

use std::collections::HashSet;

use cedar_policy::{Entities, Request, Response};
use cedar_policy_core::ast::{self, Effect};
use cedar_policy_core::authorizer::{self, AuthorizationError};
use cedar_policy_core::evaluator::{EvaluationError, Evaluator};
use cedar_policy_core::extensions::Extensions;

/// Cedar's answer for `request` from `policies`, evaluated in order.
pub fn evaluate<'a>(
    policies: impl Iterator<Item = &'a ast::Policy>,
    request: &Request,
    entities: &Entities,
) -> Response {
    let evaluator = Evaluator::new(
        request.as_ref().clone(),
        entities.as_ref(),
        Extensions::all_available(),
    );
    let mut tally = Tally::default();
    for policy in policies {
        tally.add(policy, evaluator.evaluate(policy));
    }
    tally.into_response().into()
}

/// What the evaluated policies said.
#[derive(Default)]
struct Tally {
    permits: HashSet<ast::PolicyID>,
    forbids: HashSet<ast::PolicyID>,
    errors: Vec<AuthorizationError>,
}

impl Tally {
    fn add(&mut self, policy: &ast::Policy, result: Result<bool, EvaluationError>) {
        let id = policy.id().clone();
        match (result, policy.effect()) {
            (Ok(true), Effect::Permit) => {
                self.permits.insert(id);
            }
            (Ok(true), Effect::Forbid) => {
                self.forbids.insert(id);
            }
            (Ok(false), _) => {}
            (Err(error), _) => self
                .errors
                .push(AuthorizationError::PolicyEvaluationError { id, error }),
        }
    }

    fn into_response(self) -> authorizer::Response {
        let (decision, reason) = if !self.forbids.is_empty() {
            (authorizer::Decision::Deny, self.forbids)
        } else if !self.permits.is_empty() {
            (authorizer::Decision::Allow, self.permits)
        } else {
            (authorizer::Decision::Deny, HashSet::new())
        };
        authorizer::Response::new(decision, reason, self.errors)
    }
}
