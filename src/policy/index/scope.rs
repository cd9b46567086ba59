//! A policy's scope as the index reads it: the principal, action and
//! resource constraints, with the keys they can be filed under and the
//! exact test of whether a request's entities satisfy them.
//!
//! Everything is borrowed from Cedar's own policy (a template link's slots
//! from its link), so the index keeps no copy of any entity name. The test
//! follows Cedar's scope semantics: `==` is equality, `in` is equality or
//! ancestry in the request's entities (an entity missing from them has no
//! ancestors), `is` compares the entity type. A constraint this module
//! cannot read (a slot without a value) reads as unconstrained: an extra
//! candidate is only evaluated, never wrongly decided. Filing and lookup
//! are left to the index.

use std::sync::Arc;

use cedar_policy_core::ast::{
    self, ActionConstraint, EntityReference, EntityType, EntityUID, PrincipalOrResourceConstraint,
    SlotId,
};
use cedar_policy_core::entities::{Dereference, Entities};

/// A principal or resource constraint of one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side<'a> {
    Any,
    Eq(Named<'a>),
    In(Named<'a>),
    Is(&'a Arc<EntityType>),
    IsIn(&'a Arc<EntityType>, Named<'a>),
}

/// An entity a constraint names: written in the policy (shared with it),
/// or a link's slot value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named<'a> {
    Written(&'a Arc<EntityUID>),
    Slot(&'a EntityUID),
}

impl<'a> Named<'a> {
    pub fn uid(self) -> &'a EntityUID {
        match self {
            Self::Written(uid) => uid,
            Self::Slot(uid) => uid,
        }
    }

    /// The name as a key the index can own without copying it, except
    /// for a slot value (links only).
    pub fn key(self) -> Arc<EntityUID> {
        match self {
            Self::Written(uid) => Arc::clone(uid),
            Self::Slot(uid) => Arc::new(uid.clone()),
        }
    }
}

/// The principal constraint of `policy`.
pub fn principal(policy: &ast::Policy) -> Side<'_> {
    let constraint = policy.template().principal_constraint().as_inner();
    side(constraint, policy.env().get(&SlotId::principal()))
}

/// The resource constraint of `policy`.
pub fn resource(policy: &ast::Policy) -> Side<'_> {
    let constraint = policy.template().resource_constraint().as_inner();
    side(constraint, policy.env().get(&SlotId::resource()))
}

fn side<'a>(
    constraint: &'a PrincipalOrResourceConstraint,
    slot: Option<&'a EntityUID>,
) -> Side<'a> {
    let named = |reference: &'a EntityReference| match reference {
        EntityReference::EUID(uid) => Some(Named::Written(uid)),
        EntityReference::Slot(_) => slot.map(Named::Slot),
    };
    let read = match constraint {
        PrincipalOrResourceConstraint::Any => Some(Side::Any),
        PrincipalOrResourceConstraint::Eq(r) => named(r).map(Side::Eq),
        PrincipalOrResourceConstraint::In(r) => named(r).map(Side::In),
        PrincipalOrResourceConstraint::Is(ty) => Some(Side::Is(ty)),
        PrincipalOrResourceConstraint::IsIn(ty, r) => named(r).map(|n| Side::IsIn(ty, n)),
    };
    read.unwrap_or(Side::Any)
}

impl<'a> Side<'a> {
    /// Whether `uid` satisfies the constraint.
    pub fn matches(self, uid: &EntityUID, entities: &Entities) -> bool {
        match self {
            Self::Any => true,
            Self::Eq(want) => uid == want.uid(),
            Self::In(ancestor) => is_in(uid, ancestor.uid(), entities),
            Self::Is(ty) => uid.entity_type() == &**ty,
            Self::IsIn(ty, ancestor) => {
                uid.entity_type() == &**ty && is_in(uid, ancestor.uid(), entities)
            }
        }
    }

    /// The entity of an `==` constraint.
    pub fn equal(self) -> Option<Named<'a>> {
        match self {
            Self::Eq(named) => Some(named),
            _ => None,
        }
    }

    /// The entity an `==`, `in` or `is ... in` constraint names.
    pub fn entity(self) -> Option<Named<'a>> {
        match self {
            Self::Eq(named) | Self::In(named) | Self::IsIn(_, named) => Some(named),
            Self::Any | Self::Is(_) => None,
        }
    }

    /// The type of an `is` constraint.
    pub fn type_name(self) -> Option<&'a Arc<EntityType>> {
        match self {
            Self::Is(ty) => Some(ty),
            _ => None,
        }
    }
}

/// The action constraint of `policy`: the actions it names, or `None`
/// when it names none.
pub fn actions(policy: &ast::Policy) -> Option<&[Arc<EntityUID>]> {
    match policy.template().action_constraint() {
        ActionConstraint::Eq(uid) => Some(std::slice::from_ref(uid)),
        ActionConstraint::In(uids) => Some(uids),
        ActionConstraint::Any => None,
    }
}

/// Whether the action `uid` satisfies the action constraint of `policy`.
pub fn action_matches(policy: &ast::Policy, uid: &EntityUID, entities: &Entities) -> bool {
    match policy.template().action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(want) => uid == &**want,
        ActionConstraint::In(ancestors) => ancestors.iter().any(|a| is_in(uid, a, entities)),
    }
}

/// Cedar's `uid in ancestor`.
fn is_in(uid: &EntityUID, ancestor: &EntityUID, entities: &Entities) -> bool {
    uid == ancestor || entity(uid, entities).is_some_and(|e| e.is_descendant_of(ancestor))
}

/// The ancestors of `uid` in `entities` (none if it is not there).
pub fn ancestors<'e>(
    uid: &EntityUID,
    entities: &'e Entities,
) -> impl Iterator<Item = &'e EntityUID> {
    entity(uid, entities)
        .into_iter()
        .flat_map(ast::Entity::ancestors)
}

fn entity<'e>(uid: &EntityUID, entities: &'e Entities) -> Option<&'e ast::Entity> {
    match entities.entity(uid) {
        Dereference::Data(entity) => Some(entity),
        Dereference::NoSuchEntity | Dereference::Residual(_) => None,
    }
}
