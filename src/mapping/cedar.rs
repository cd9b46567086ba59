//! Cedar's own value and entity types, which each request is built from.
//!
//! cedar-policy's public constructors take attribute and context values as
//! restricted expressions and evaluate them, and compute the transitive
//! closure of every entity set they are given: about 18 µs per Check in
//! `cargo bench --bench mapping`, more than the decision itself. Its core
//! crate (cedar-policy-core, pinned to the same version, whose types
//! cedar-policy converts from) takes values as they are and accepts an
//! entity set whose closure is already known. The closure is known here:
//! the policy folder's entities were closed when they loaded, and the
//! request's own principal is given all the ancestors of its parents.
//!
//! This is still typed data built from raw strings: no Cedar text is ever
//! formatted from request data. Which values and entities a request has is
//! the mapping module's business.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use cedar_policy::{Context, Entities, EntityUid, RestrictedExpression};
use cedar_policy_core::ast::{self, EntityUID, PartialValue};
use cedar_policy_core::entities::{self, NoEntitiesSchema, TCComputation};
use cedar_policy_core::extensions::Extensions;
use smol_str::SmolStr;

pub use cedar_policy_core::ast::Value;

use super::MappingError;

/// A Cedar string.
pub fn string(value: &str) -> Value {
    Value::from(value)
}

/// A Cedar boolean.
pub fn boolean(value: bool) -> Value {
    Value::from(value)
}

/// A Cedar long.
pub fn long(value: i64) -> Value {
    Value::from(value)
}

/// A Cedar set.
pub fn set(items: impl IntoIterator<Item = Value>) -> Value {
    Value::set(items, None)
}

/// A Cedar record. Callers pass unique keys (a repeated key keeps the
/// last value).
pub fn record<K: Into<SmolStr>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
    Value::record(pairs, None)
}

/// The request context from its top-level pairs.
pub fn context(pairs: Vec<(&'static str, Value)>) -> Context {
    let map: BTreeMap<SmolStr, Value> = pairs
        .into_iter()
        .map(|(k, v)| (SmolStr::new_static(k), v))
        .collect();
    Context::from(ast::Context::Value(Arc::new(map)))
}

/// The value of an extension constructor call (`datetime("…")`,
/// `ip("…")`), evaluated by Cedar; `None` when Cedar refuses it.
pub fn evaluate(expression: RestrictedExpression) -> Option<Value> {
    let context = Context::from_pairs([("v".to_owned(), expression)]).ok()?;
    match context.as_ref() {
        ast::Context::Value(map) => map.get("v").cloned(),
        ast::Context::RestrictedResidual(_) => None,
    }
}

/// An entity built for one request: `ancestors` must hold every ancestor
/// of `parents` (the closure is not computed again).
pub fn entity(
    uid: &EntityUid,
    attrs: Vec<(&'static str, Value)>,
    parents: &[EntityUid],
    ancestors: HashSet<EntityUID>,
) -> Arc<ast::Entity> {
    let attrs = attrs
        .into_iter()
        .map(|(k, v)| (SmolStr::new_static(k), PartialValue::from(v)));
    let parents: HashSet<EntityUID> = parents.iter().map(|p| p.as_ref().clone()).collect();
    let indirect = ancestors.difference(&parents).cloned().collect();
    Arc::new(ast::Entity::new_with_attr_partial_value(
        uid.as_ref().clone(),
        attrs,
        indirect,
        parents,
        std::iter::empty(),
    ))
}

/// The policy folder's entities, shared between the store and every
/// request's slice.
#[derive(Debug, Default)]
pub struct StoreEntities(HashMap<EntityUID, Arc<ast::Entity>>);

impl StoreEntities {
    /// Shares the entities of `loaded` (closed, as loading leaves them)
    /// and gives back a set holding the same shared entities. `loaded` is
    /// consumed as it is copied, so a big entity set never exists twice.
    pub fn share(loaded: Entities) -> Result<(Self, Entities), String> {
        let map: HashMap<EntityUID, Arc<ast::Entity>> = loaded
            .into_iter()
            .map(|e| (e.uid().as_ref().clone(), Arc::new(e.as_ref().clone())))
            .collect();
        let same = closed_set(map.values().cloned())?;
        Ok((Self(map), same))
    }

    /// The entity `uid`, if the folder defines it.
    pub fn get(&self, uid: &EntityUID) -> Option<&Arc<ast::Entity>> {
        self.0.get(uid)
    }
}

/// A set of entities that is already transitively closed.
pub fn entities(all: Vec<Arc<ast::Entity>>) -> Result<Entities, MappingError> {
    closed_set(all).map_err(|reason| MappingError::Entity {
        uid: "slice".into(),
        reason,
    })
}

fn closed_set(all: impl IntoIterator<Item = Arc<ast::Entity>>) -> Result<Entities, String> {
    let set = entities::Entities::new()
        .add_entities(
            all,
            None::<&NoEntitiesSchema>,
            TCComputation::AssumeAlreadyComputed,
            Extensions::none(),
        )
        .map_err(|e| e.to_string())?;
    Ok(Entities::from(set))
}
