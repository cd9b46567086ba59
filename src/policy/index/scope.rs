//! A policy's scope as the index keeps it: the principal, action and
//! resource constraints, with the keys they can be filed under and the
//! exact test of whether a request's entities satisfy them.
//!
//! The test follows Cedar's scope semantics: `==` is equality, `in` is
//! equality or ancestry in the request's entities (an entity missing from
//! them has no ancestors), `is` compares the entity type. Filing and lookup
//! are left to the index.

use cedar_policy::{
    ActionConstraint, Entities, EntityTypeName, EntityUid, PrincipalConstraint, ResourceConstraint,
};

/// A principal or resource constraint. Names are boxed: an index holds
/// three constraints for each of up to tens of thousands of policies, most
/// of them `Any`, and Cedar's `EntityUid` is 120 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    Any,
    Eq(Box<EntityUid>),
    In(Box<EntityUid>),
    Is(Box<EntityTypeName>),
    IsIn(Box<(EntityTypeName, EntityUid)>),
}

impl From<PrincipalConstraint> for Constraint {
    fn from(constraint: PrincipalConstraint) -> Self {
        match constraint {
            PrincipalConstraint::Any => Self::Any,
            PrincipalConstraint::Eq(uid) => Self::Eq(Box::new(uid)),
            PrincipalConstraint::In(uid) => Self::In(Box::new(uid)),
            PrincipalConstraint::Is(ty) => Self::Is(Box::new(ty)),
            PrincipalConstraint::IsIn(ty, uid) => Self::IsIn(Box::new((ty, uid))),
        }
    }
}

impl From<ResourceConstraint> for Constraint {
    fn from(constraint: ResourceConstraint) -> Self {
        match constraint {
            ResourceConstraint::Any => Self::Any,
            ResourceConstraint::Eq(uid) => Self::Eq(Box::new(uid)),
            ResourceConstraint::In(uid) => Self::In(Box::new(uid)),
            ResourceConstraint::Is(ty) => Self::Is(Box::new(ty)),
            ResourceConstraint::IsIn(ty, uid) => Self::IsIn(Box::new((ty, uid))),
        }
    }
}

impl Constraint {
    /// Whether `uid` satisfies the constraint.
    pub fn matches(&self, uid: &EntityUid, entities: &Entities) -> bool {
        match self {
            Self::Any => true,
            Self::Eq(want) => uid == &**want,
            Self::In(ancestor) => is_in(uid, ancestor, entities),
            Self::Is(ty) => uid.type_name() == &**ty,
            Self::IsIn(both) => uid.type_name() == &both.0 && is_in(uid, &both.1, entities),
        }
    }

    /// The entity of an `==` constraint.
    pub fn equal(&self) -> Option<&EntityUid> {
        match self {
            Self::Eq(uid) => Some(uid),
            _ => None,
        }
    }

    /// The entity an `==`, `in` or `is ... in` constraint names.
    pub fn entity(&self) -> Option<&EntityUid> {
        match self {
            Self::Eq(uid) | Self::In(uid) => Some(uid),
            Self::IsIn(both) => Some(&both.1),
            Self::Any | Self::Is(_) => None,
        }
    }

    /// The type of an `is` constraint.
    pub fn type_name(&self) -> Option<&EntityTypeName> {
        match self {
            Self::Is(ty) => Some(ty),
            _ => None,
        }
    }
}

/// An action constraint (boxed like [`Constraint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actions {
    Any,
    Eq(Box<EntityUid>),
    In(Box<[EntityUid]>),
}

impl From<ActionConstraint> for Actions {
    fn from(constraint: ActionConstraint) -> Self {
        match constraint {
            ActionConstraint::Any => Self::Any,
            ActionConstraint::Eq(uid) => Self::Eq(Box::new(uid)),
            ActionConstraint::In(uids) => Self::In(uids.into_boxed_slice()),
        }
    }
}

impl Actions {
    /// Whether the action `uid` satisfies the constraint.
    pub fn matches(&self, uid: &EntityUid, entities: &Entities) -> bool {
        match self {
            Self::Any => true,
            Self::Eq(want) => uid == &**want,
            Self::In(ancestors) => ancestors.iter().any(|a| is_in(uid, a, entities)),
        }
    }

    /// The actions named, or `None` when unconstrained.
    pub fn entities(&self) -> Option<&[EntityUid]> {
        match self {
            Self::Any => None,
            Self::Eq(uid) => Some(std::slice::from_ref(uid)),
            Self::In(uids) => Some(uids),
        }
    }
}

/// Cedar's `uid in ancestor`.
fn is_in(uid: &EntityUid, ancestor: &EntityUid, entities: &Entities) -> bool {
    uid == ancestor || entities.is_ancestor_of(ancestor, uid)
}
