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
//! The index holds the store's only copy of each policy (Cedar's core
//! policy, its body shared behind an `Arc`), reads scopes from it without
//! copying names, and files positions flat (the filed module). How the
//! candidates are evaluated is the tally module's business; the
//! differential test compares the answer with Cedar's own authorizer over
//! the whole set.

mod filed;
mod scope;
mod tally;

use std::sync::Arc;

use cedar_policy::{Entities, EntityUid, PolicySet, Request, Response};
use cedar_policy_core::ast::{self, EntityType, EntityUID};
use cedar_policy_core::entities::Entities as CoreEntities;

use filed::{Filed, Filing};

/// Why the policy set of some candidates could not be built: two of them
/// share an id, so the index was not built from one set.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the candidate policy set: {0}")]
pub struct SubsetError(String);

/// Policies of one set, in the set's order, filed by scope.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    policies: Vec<ast::Policy>,
    principal: Keyed,
    resource: Keyed,
    action: Filed<Arc<EntityUID>>,
    /// Policies whose scope names no entity, action or type.
    unscoped: Vec<usize>,
}

/// Policies filed by the entity or the entity type one side names.
#[derive(Debug, Default)]
struct Keyed {
    by_uid: Filed<Arc<EntityUID>>,
    by_type: Filed<Arc<EntityType>>,
}

impl Keyed {
    /// Adds the policies filed under `uid`, its ancestors and its type.
    fn collect(&self, uid: &EntityUID, entities: &CoreEntities, found: &mut Vec<usize>) {
        for key in with_ancestors(uid, entities) {
            found.extend_from_slice(self.by_uid.get(key));
        }
        found.extend_from_slice(self.by_type.get(uid.entity_type()));
    }
}

/// `uid` followed by all of its ancestors in `entities`.
fn with_ancestors<'a>(
    uid: &'a EntityUID,
    entities: &'a CoreEntities,
) -> impl Iterator<Item = &'a EntityUID> {
    std::iter::once(uid).chain(scope::ancestors(uid, entities))
}

/// The index while policies are filed.
#[derive(Default)]
struct Builder {
    principal_uid: Filing<Arc<EntityUID>>,
    principal_type: Filing<Arc<EntityType>>,
    resource_uid: Filing<Arc<EntityUID>>,
    resource_type: Filing<Arc<EntityType>>,
    action: Filing<Arc<EntityUID>>,
    unscoped: Vec<usize>,
}

impl Builder {
    /// Files `policy`, at position `at`, under the most selective key of
    /// its scope.
    fn file(&mut self, policy: &ast::Policy, at: usize) {
        let (principal, resource) = (scope::principal(policy), scope::resource(policy));
        if let Some(named) = principal.equal() {
            self.principal_uid.add(named.key(), at);
        } else if let Some(named) = resource.equal() {
            self.resource_uid.add(named.key(), at);
        } else if let Some(named) = principal.entity() {
            self.principal_uid.add(named.key(), at);
        } else if let Some(named) = resource.entity() {
            self.resource_uid.add(named.key(), at);
        } else if let Some(actions) = scope::actions(policy) {
            actions
                .iter()
                .for_each(|a| self.action.add(Arc::clone(a), at));
        } else if let Some(ty) = principal.type_name() {
            self.principal_type.add(Arc::clone(ty), at);
        } else if let Some(ty) = resource.type_name() {
            self.resource_type.add(Arc::clone(ty), at);
        } else {
            self.unscoped.push(at);
        }
    }

    fn finish(mut self, policies: Vec<ast::Policy>) -> PolicyIndex {
        self.unscoped.shrink_to_fit();
        PolicyIndex {
            policies,
            principal: Keyed {
                by_uid: self.principal_uid.finish(),
                by_type: self.principal_type.finish(),
            },
            resource: Keyed {
                by_uid: self.resource_uid.finish(),
                by_type: self.resource_type.finish(),
            },
            action: self.action.finish(),
            unscoped: self.unscoped,
        }
    }
}

impl PolicyIndex {
    /// Files every policy of `set`, in the set's order.
    pub fn build(set: &PolicySet) -> Self {
        Self::from_policies(set.policies().map(|p| p.as_ref().clone()))
    }

    /// Files `policies` (static and template-linked, ids unique), in this
    /// order.
    pub fn from_policies(policies: impl IntoIterator<Item = ast::Policy>) -> Self {
        let mut policies: Vec<ast::Policy> = policies.into_iter().collect();
        policies.shrink_to_fit();
        let mut builder = Builder::default();
        for (at, policy) in policies.iter().enumerate() {
            builder.file(policy, at);
        }
        builder.finish(policies)
    }

    /// The policy at position `at`.
    pub fn policy(&self, at: usize) -> Option<&ast::Policy> {
        self.policies.get(at)
    }

    /// Every policy, in order.
    pub fn policies(&self) -> impl Iterator<Item = &ast::Policy> {
        self.policies.iter()
    }

    /// Ids of every policy, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.policies.iter().map(|p| p.id().as_ref())
    }

    /// Number of policies indexed.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether the index holds no policy.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Positions, in set order, of the policies whose scope matches.
    pub fn candidates(
        &self,
        principal: &EntityUid,
        action: &EntityUid,
        resource: &EntityUid,
        entities: &Entities,
    ) -> Vec<usize> {
        let (principal, action, resource) =
            (principal.as_ref(), action.as_ref(), resource.as_ref());
        let entities: &CoreEntities = entities.as_ref();
        let mut found = self.unscoped.clone();
        self.principal.collect(principal, entities, &mut found);
        self.resource.collect(resource, entities, &mut found);
        for key in with_ancestors(action, entities) {
            found.extend_from_slice(self.action.get(key));
        }
        found.retain(|&at| {
            self.policies.get(at).is_some_and(|p| {
                scope::principal(p).matches(principal, entities)
                    && scope::action_matches(p, action, entities)
                    && scope::resource(p).matches(resource, entities)
            })
        });
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Cedar's answer for `request`, evaluating only the candidate
    /// policies; every policy when the request has an unknown part (which
    /// the mapping never builds; a policy left partial would then count as
    /// an error, which denies).
    pub fn is_authorized(&self, request: &Request, entities: &Entities) -> Response {
        let (Some(principal), Some(action), Some(resource)) =
            (request.principal(), request.action(), request.resource())
        else {
            return self.is_authorized_by_all(request, entities);
        };
        let picks = self.candidates(principal, action, resource, entities);
        let policies = picks.iter().filter_map(|&at| self.policies.get(at));
        tally::evaluate(policies, request, entities)
    }

    /// Cedar's answer for `request`, evaluating every policy (the index
    /// switched off).
    pub fn is_authorized_by_all(&self, request: &Request, entities: &Entities) -> Response {
        tally::evaluate(self.policies.iter(), request, entities)
    }

    /// A policy set of the policies at `picks`, in that order, with the
    /// templates their links need (for tests and benchmarks: deciding
    /// does not build one).
    pub fn subset(&self, picks: &[usize]) -> Result<PolicySet, SubsetError> {
        let mut set = ast::PolicySet::new();
        for policy in picks.iter().filter_map(|&at| self.policies.get(at)) {
            set.add(policy.clone())
                .map_err(|e| SubsetError(e.to_string()))?;
        }
        Ok(PolicySet::from(set))
    }
}

#[cfg(test)]
mod tests;
