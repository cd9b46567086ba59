//! The policy index: which policies of a set could apply to a request,
//! found from their scopes without evaluating them.
//!
//! Built once per policy store at load. Each policy, static or
//! template-linked, is filed under one key of its scope: the entity its
//! principal or resource constraint names (`==`, `in`, `is ... in`), else
//! the actions it names, else the entity type its `is` names, else under
//! "unscoped". A request looks up its principal, action and resource with
//! their ancestors and types, keeps the policies whose whole scope matches,
//! and Cedar evaluates only those, in set order. A policy whose scope does
//! not match is never satisfied and never errors (Cedar evaluates the scope
//! first and stops there), so the decision, the determining policies and
//! the errors are those of the whole set. Making the answer fail-closed is
//! left to the decision module.

mod scope;

use std::collections::{HashMap, HashSet};

use cedar_policy::{
    Authorizer, Entities, EntityTypeName, EntityUid, PolicyId, PolicySet, PolicySetError, Request,
    Response,
};

use scope::{Actions, Constraint};

/// Why a per-request policy set could not be built; the whole set is
/// evaluated instead.
#[derive(Debug, thiserror::Error)]
pub enum SubsetError {
    #[error("cannot build the candidate policy set: {0}")]
    Set(Box<PolicySetError>),
    #[error("policy `{0}` or its template is not in the set the index was built from")]
    Missing(String),
}

impl From<PolicySetError> for SubsetError {
    fn from(error: PolicySetError) -> Self {
        Self::Set(Box::new(error))
    }
}

/// Policies of one set, filed by scope. The index names policies by id;
/// the policies themselves stay in the set it was built from, which is
/// passed back in to decide (one copy of each policy, not two).
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

/// One policy's id and scope.
#[derive(Debug)]
struct Entry {
    id: PolicyId,
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
    /// Files every policy of `set`.
    pub fn build(set: &PolicySet) -> Self {
        let mut index = Self::default();
        index.entries.reserve_exact(set.policies().count());
        for policy in set.policies() {
            let entry = Entry {
                id: policy.id().clone(),
                principal: policy.principal_constraint().into(),
                action: policy.action_constraint().into(),
                resource: policy.resource_constraint().into(),
            };
            index.file(entry);
        }
        index.shrink();
        index
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
    /// policies. `whole` is the set the index was built from; it is
    /// evaluated instead when the request has an unknown part or every
    /// policy is a candidate.
    pub fn is_authorized(
        &self,
        whole: &PolicySet,
        request: &Request,
        entities: &Entities,
    ) -> Response {
        let authorizer = Authorizer::new();
        let (Some(principal), Some(action), Some(resource)) =
            (request.principal(), request.action(), request.resource())
        else {
            return authorizer.is_authorized(request, whole, entities);
        };
        let picks = self.candidates(principal, action, resource, entities);
        if picks.len() == self.entries.len() {
            return authorizer.is_authorized(request, whole, entities);
        }
        match self.subset(whole, &picks) {
            Ok(set) => authorizer.is_authorized(request, &set, entities),
            // Cannot happen with ids unique in `whole`; stay correct anyway.
            Err(_) => authorizer.is_authorized(request, whole, entities),
        }
    }

    /// A policy set of the policies of `whole` at `picks`, in that order,
    /// with the templates their links need.
    pub fn subset(&self, whole: &PolicySet, picks: &[usize]) -> Result<PolicySet, SubsetError> {
        let mut set = PolicySet::new();
        let mut added: HashSet<&PolicyId> = HashSet::new();
        for entry in picks.iter().filter_map(|&at| self.entries.get(at)) {
            let missing = || SubsetError::Missing(entry.id.to_string());
            let policy = whole.policy(&entry.id).ok_or_else(missing)?;
            let Some(template_id) = policy.template_id() else {
                set.add(policy.clone())?;
                continue;
            };
            if added.insert(template_id) {
                let template = whole.template(template_id).ok_or_else(missing)?;
                set.add_template(template.clone())?;
            }
            let slots = policy.template_links().ok_or_else(missing)?;
            set.link(template_id.clone(), entry.id.clone(), slots)?;
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests;
