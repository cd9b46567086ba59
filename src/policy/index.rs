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
    Authorizer, Entities, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, PolicySetError,
    Request, Response, SlotId, Template,
};

use scope::{Actions, Constraint};

/// Why a per-request policy set could not be built; the whole set is
/// evaluated instead.
#[derive(Debug, thiserror::Error)]
pub enum SubsetError {
    #[error("cannot build the candidate policy set: {0}")]
    Set(Box<PolicySetError>),
    #[error("linked policy `{0}` has no template in the index")]
    MissingTemplate(String),
}

impl From<PolicySetError> for SubsetError {
    fn from(error: PolicySetError) -> Self {
        Self::Set(Box::new(error))
    }
}

/// Policies of one set, filed by scope.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    /// Every policy of the set, in the set's order.
    entries: Vec<Entry>,
    /// Templates that linked policies in `entries` refer to.
    templates: Vec<Template>,
    principal: Keyed,
    resource: Keyed,
    action: HashMap<EntityUid, Vec<usize>>,
    /// Policies whose scope names no entity, action or type.
    unscoped: Vec<usize>,
}

/// One policy with its scope, ready to be added to a per-request set.
#[derive(Debug)]
struct Entry {
    policy: Policy,
    /// For a template-linked policy: its template and slot values.
    link: Option<Link>,
    principal: Constraint,
    action: Actions,
    resource: Constraint,
}

#[derive(Debug)]
struct Link {
    /// Position of the template in [`PolicyIndex::templates`].
    template: usize,
    slots: HashMap<SlotId, EntityUid>,
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
        let mut template_at: HashMap<PolicyId, usize> = HashMap::new();
        for policy in set.policies() {
            let link = index.link_of(set, policy, &mut template_at);
            let entry = Entry {
                principal: policy.principal_constraint().into(),
                action: policy.action_constraint().into(),
                resource: policy.resource_constraint().into(),
                policy: policy.clone(),
                link,
            };
            index.file(entry);
        }
        index
    }

    /// The template and slots of a linked policy, recording its template.
    fn link_of(
        &mut self,
        set: &PolicySet,
        policy: &Policy,
        template_at: &mut HashMap<PolicyId, usize>,
    ) -> Option<Link> {
        let id = policy.template_id()?;
        let template = match template_at.get(id) {
            Some(at) => *at,
            None => {
                self.templates.push(set.template(id)?.clone());
                let at = self.templates.len() - 1;
                template_at.insert(id.clone(), at);
                at
            }
        };
        let slots = policy.template_links()?;
        Some(Link { template, slots })
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
        match self.subset(&picks) {
            Ok(set) => authorizer.is_authorized(request, &set, entities),
            // Cannot happen with ids unique in `whole`; stay correct anyway.
            Err(_) => authorizer.is_authorized(request, whole, entities),
        }
    }

    /// A policy set of the entries at `picks`, in that order, with the
    /// templates their links need.
    pub fn subset(&self, picks: &[usize]) -> Result<PolicySet, SubsetError> {
        let mut set = PolicySet::new();
        let mut added: HashSet<usize> = HashSet::new();
        for entry in picks.iter().filter_map(|&at| self.entries.get(at)) {
            let Some(link) = &entry.link else {
                set.add(entry.policy.clone())?;
                continue;
            };
            let id = entry.policy.id();
            let template = self
                .templates
                .get(link.template)
                .ok_or_else(|| SubsetError::MissingTemplate(id.to_string()))?;
            if added.insert(link.template) {
                set.add_template(template.clone())?;
            }
            set.link(template.id().clone(), id.clone(), link.slots.clone())?;
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests;
