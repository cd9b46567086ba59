//! The policy index: which policies of a set could apply to a request,
//! found from their scopes without evaluating them.
//!
//! Built once per policy store at load. Each policy, static or
//! template-linked, is filed under one key of its scope: the entity its
//! principal or resource constraint names (`==`, `in`, `is ... in`), else
//! the actions it names, else the entity type its `is` names, else under
//! "unscoped". A request looks up its principal, action and resource with
//! their ancestors and types, keeps the policies whose whole scope matches,
//! and Cedar's evaluator evaluates only those, in set order. A policy whose
//! scope does not match is never satisfied and never errors (Cedar evaluates
//! the scope first and stops there), so the decision, the determining
//! policies and the errors are those of the whole set. Making the answer
//! fail-closed is left to the decision module.
//!
//! The candidates are evaluated one by one with cedar-policy-core's
//! evaluator and combined as Cedar's authorizer combines them (any
//! satisfied forbid denies and determines; else any satisfied permit allows
//! and determines; else deny; every error is reported), instead of building
//! a policy set of the candidates for each request: that set's maps cost
//! more than the evaluation. The differential test compares the answer with
//! Cedar's own authorizer over the whole set.

mod scope;

use std::collections::{HashMap, HashSet};

use cedar_policy::{Entities, EntityTypeName, EntityUid, Policy, PolicySet, Request, Response};
use cedar_policy_core::ast::{self, Effect};
use cedar_policy_core::authorizer::{self, AuthorizationError};
use cedar_policy_core::evaluator::{EvaluationError, Evaluator};
use cedar_policy_core::extensions::Extensions;

use scope::{Actions, Constraint};

/// Why the policy set of some candidates could not be built: two of them
/// share an id, so the index was not built from one set.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the candidate policy set: {0}")]
pub struct SubsetError(String);

/// Policies of one set, filed by scope. Each entry shares its policy's
/// body with the set it was built from (Cedar keeps it behind an `Arc`).
#[derive(Debug, Default)]
pub struct PolicyIndex {
    /// Every policy of the set, in the set's order.
    entries: Vec<Entry>,
    principal: Keyed,
    resource: Keyed,
    action: HashMap<EntityUid, Vec<usize>>,
    /// Policies whose scope names no entity, action or type.
    unscoped: Vec<usize>,
}

/// One policy and its scope.
#[derive(Debug)]
struct Entry {
    policy: ast::Policy,
    principal: Constraint,
    action: Actions,
    resource: Constraint,
}

/// Policies filed by the entity or the entity type one side names.
#[derive(Debug, Default)]
struct Keyed {
    by_uid: HashMap<EntityUid, Vec<usize>>,
    by_type: HashMap<EntityTypeName, Vec<usize>>,
}

impl Keyed {
    /// Adds the policies filed under `uid`, its ancestors and its type.
    fn collect(&self, uid: &EntityUid, entities: &Entities, found: &mut Vec<usize>) {
        for key in with_ancestors(uid, entities) {
            found.extend(self.by_uid.get(key).into_iter().flatten());
        }
        found.extend(self.by_type.get(uid.type_name()).into_iter().flatten());
    }
}

fn shrink_buckets<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<usize>>) {
    map.values_mut().for_each(Vec::shrink_to_fit);
    map.shrink_to_fit();
}

/// `uid` followed by all of its ancestors in `entities`.
fn with_ancestors<'a>(
    uid: &'a EntityUid,
    entities: &'a Entities,
) -> impl Iterator<Item = &'a EntityUid> {
    let ancestors = entities.ancestors(uid).into_iter().flatten();
    std::iter::once(uid).chain(ancestors)
}

impl PolicyIndex {
    /// Files every policy of `set`, in the set's order.
    pub fn build(set: &PolicySet) -> Self {
        Self::from_policies(set.policies().map(|p| p.as_ref().clone()))
    }

    /// Files `policies` (static and template-linked, ids unique), in this
    /// order.
    pub fn from_policies(policies: impl IntoIterator<Item = ast::Policy>) -> Self {
        let mut index = Self::default();
        let policies = policies.into_iter();
        index.entries.reserve_exact(policies.size_hint().0);
        for policy in policies {
            let scoped = Policy::from(policy);
            let entry = Entry {
                principal: scoped.principal_constraint().into(),
                action: scoped.action_constraint().into(),
                resource: scoped.resource_constraint().into(),
                policy: scoped.as_ref().clone(),
            };
            index.file(entry);
        }
        index.entries.shrink_to_fit();
        index.shrink();
        index
    }

    /// The policy at position `at`.
    pub fn policy(&self, at: usize) -> Option<&ast::Policy> {
        self.entries.get(at).map(|e| &e.policy)
    }

    /// Every policy, in order.
    pub fn policies(&self) -> impl Iterator<Item = &ast::Policy> {
        self.entries.iter().map(|e| &e.policy)
    }

    /// Ids of every policy, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.policy.id().as_ref())
    }

    /// Gives back what the buckets over-allocated while filing.
    fn shrink(&mut self) {
        shrink_buckets(&mut self.principal.by_uid);
        shrink_buckets(&mut self.resource.by_uid);
        shrink_buckets(&mut self.action);
        shrink_buckets(&mut self.principal.by_type);
        shrink_buckets(&mut self.resource.by_type);
        self.unscoped.shrink_to_fit();
    }

    /// Files one entry under the most selective key of its scope.
    fn file(&mut self, entry: Entry) {
        let at = self.entries.len();
        let bucket = |map: &mut HashMap<EntityUid, Vec<usize>>, uid: &EntityUid| {
            map.entry(uid.clone()).or_default().push(at);
        };
        if let Some(uid) = entry.principal.equal() {
            bucket(&mut self.principal.by_uid, uid);
        } else if let Some(uid) = entry.resource.equal() {
            bucket(&mut self.resource.by_uid, uid);
        } else if let Some(uid) = entry.principal.entity() {
            bucket(&mut self.principal.by_uid, uid);
        } else if let Some(uid) = entry.resource.entity() {
            bucket(&mut self.resource.by_uid, uid);
        } else if let Some(actions) = entry.action.entities() {
            actions.iter().for_each(|a| bucket(&mut self.action, a));
        } else {
            self.file_by_type(&entry, at);
        }
        self.entries.push(entry);
    }

    fn file_by_type(&mut self, entry: &Entry, at: usize) {
        let (by_type, type_name) = match (entry.principal.type_name(), entry.resource.type_name()) {
            (Some(t), _) => (&mut self.principal.by_type, t),
            (None, Some(t)) => (&mut self.resource.by_type, t),
            (None, None) => return self.unscoped.push(at),
        };
        by_type.entry(type_name.clone()).or_default().push(at);
    }

    /// Number of policies indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index holds no policy.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Positions, in set order, of the policies whose scope matches.
    pub fn candidates(
        &self,
        principal: &EntityUid,
        action: &EntityUid,
        resource: &EntityUid,
        entities: &Entities,
    ) -> Vec<usize> {
        let mut found = self.unscoped.clone();
        self.principal.collect(principal, entities, &mut found);
        self.resource.collect(resource, entities, &mut found);
        for key in with_ancestors(action, entities) {
            found.extend(self.action.get(key).into_iter().flatten());
        }
        found.retain(|&at| {
            self.entries.get(at).is_some_and(|e| {
                e.principal.matches(principal, entities)
                    && e.action.matches(action, entities)
                    && e.resource.matches(resource, entities)
            })
        });
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Cedar's answer for `request`, evaluating only the candidate
    /// policies; every policy when the request has an unknown part (which
    /// the mapping never builds).
    pub fn is_authorized(&self, request: &Request, entities: &Entities) -> Response {
        let (Some(principal), Some(action), Some(resource)) =
            (request.principal(), request.action(), request.resource())
        else {
            return self.is_authorized_by_all(request, entities);
        };
        let picks = self.candidates(principal, action, resource, entities);
        self.evaluate(&picks, request, entities)
    }

    /// Cedar's answer for `request`, evaluating every policy (the index
    /// switched off).
    pub fn is_authorized_by_all(&self, request: &Request, entities: &Entities) -> Response {
        let all: Vec<usize> = (0..self.entries.len()).collect();
        self.evaluate(&all, request, entities)
    }

    /// Evaluates the policies at `picks`, in that order, and combines
    /// their results as Cedar's authorizer does.
    fn evaluate(&self, picks: &[usize], request: &Request, entities: &Entities) -> Response {
        let evaluator = Evaluator::new(
            request.as_ref().clone(),
            entities.as_ref(),
            Extensions::all_available(),
        );
        let mut tally = Tally::default();
        for entry in picks.iter().filter_map(|&at| self.entries.get(at)) {
            tally.add(&entry.policy, evaluator.evaluate(&entry.policy));
        }
        tally.into_response().into()
    }

    /// A policy set of the policies at `picks`, in that order, with the
    /// templates their links need (for tests and benchmarks: deciding
    /// does not build one).
    pub fn subset(&self, picks: &[usize]) -> Result<PolicySet, SubsetError> {
        let mut set = ast::PolicySet::new();
        for entry in picks.iter().filter_map(|&at| self.entries.get(at)) {
            set.add(entry.policy.clone())
                .map_err(|e| SubsetError(e.to_string()))?;
        }
        Ok(PolicySet::from(set))
    }
}

/// What the evaluated policies said, as Cedar's authorizer tallies it.
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
            // Cedar skips a policy that errors, and reports the error.
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

#[cfg(test)]
mod tests;
