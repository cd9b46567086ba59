//! From request facts and identity to a Cedar request: principal, action,
//! resource, context and the slice of entities the decision may look at.
//!
//! Every entity id and value is built with Cedar's typed API from the raw
//! strings, never by formatting Cedar source, so any UTF-8 survives exactly
//! and no request value can become policy text. Evaluating the request is
//! left to the decision module.

mod cedar;
mod context;
mod extension;
mod token;

pub use cedar::StoreEntities;

pub use context::datetime;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{Context, Entities, EntityId, EntityTypeName, EntityUid, Request};
use cedar_policy_core::ast::{Entity, EntityUID};

use cedar::Value;

use crate::config::RequestConfig;
use crate::identity::{Identity, Principal, User, Workload};
use crate::policy::PolicyStore;
use crate::request::{routes, Kind, RequestFacts};

/// Action of a network-filter (TCP) check.
pub const TCP_CONNECT: &str = "tcp_connect";
/// Id of the one anonymous principal.
pub const ANONYMOUS: &str = "anonymous";

/// A Cedar request ready to evaluate, with its entity slice.
#[derive(Debug, Clone)]
pub struct CedarRequest {
    pub principal: EntityUid,
    pub action: EntityUid,
    pub resource: EntityUid,
    pub request: Request,
    pub context: Context,
    pub entities: Entities,
}

/// Why a Cedar request could not be built; denies as an internal fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MappingError {
    #[error("cannot build entity `{uid}`: {reason}")]
    Entity { uid: String, reason: String },
    #[error("cannot build the context: {0}")]
    Context(String),
    #[error("cannot build the request: {0}")]
    Request(String),
}

/// Builds the Cedar request for one decision.
pub fn map(
    facts: &RequestFacts,
    identity: &Identity,
    config: &RequestConfig,
    store: &PolicyStore,
) -> Result<CedarRequest, MappingError> {
    let types = &store.type_names;
    let (action, resource) = action_and_resource(facts, &store.routes, types)?;
    let principal = principal(&identity.principal, types)?;
    let context = context::build(facts, identity, config)?;

    let mut slice = Slice::new([&principal.uid, &resource]);
    let ancestors = slice.add_from_store(&store.shared_entities, &principal.parents);
    slice.add_from_store(&store.shared_entities, std::slice::from_ref(&action));
    slice.push(cedar::entity(
        &principal.uid,
        principal.attrs,
        &principal.parents,
        ancestors,
    ));
    slice.push(cedar::entity(
        &resource,
        resource_attrs(facts),
        &[],
        HashSet::new(),
    ));
    let entities = cedar::entities(slice.entities)?;
    let request = Request::new(
        principal.uid.clone(),
        action.clone(),
        resource.clone(),
        context.clone(),
        None,
    )
    .map_err(|e| MappingError::Request(e.to_string()))?;
    Ok(CedarRequest {
        principal: principal.uid,
        action,
        resource,
        request,
        context,
        entities,
    })
}

/// The action and resource: from the route table when a route matches,
/// else the method on the canonical path (or `tcp_connect` on the
/// destination for a network check).
fn action_and_resource(
    facts: &RequestFacts,
    routes: &[routes::RouteConfig],
    types: &TypeNames,
) -> Result<(EntityUid, EntityUid), MappingError> {
    let Some(http) = facts.http.as_ref() else {
        let destination = facts
            .destination_address
            .map_or_else(String::new, |a| a.to_string());
        return Ok((
            types.uid("Action", TCP_CONNECT)?,
            types.uid("Endpoint", &destination)?,
        ));
    };
    let found = routes::find(routes, &http.host.name, &http.method, &http.path.path);
    let action = found
        .as_ref()
        .map_or(http.method.as_str(), |m| m.action.as_str());
    let resource = match found.as_ref().and_then(|m| m.resource.as_ref()) {
        Some((ty, id)) => types.uid(ty, id)?,
        None => types.uid("Path", &http.path.path)?,
    };
    Ok((types.uid("Action", action)?, resource))
}

/// Entity type names parsed once, when a policy set loads. Cedar parses a
/// type name with its full policy grammar (tens of microseconds each), far
/// too slow for several names per Check.
#[derive(Debug, Clone)]
pub struct TypeNames(HashMap<String, EntityTypeName>);

/// Types every request may use, besides those the route table names.
const BUILT_IN_TYPES: &[&str] = &[
    "Action",
    "Anonymous",
    "Endpoint",
    "Group",
    "Namespace",
    "Path",
    "User",
    "Workload",
];

impl TypeNames {
    /// The built-in types and `extra` (the route table's resource types).
    /// A name that does not parse is left out and refused when used.
    pub fn new<'a>(extra: impl IntoIterator<Item = &'a str>) -> Self {
        let names = BUILT_IN_TYPES.iter().copied().chain(extra);
        let parsed = names.filter_map(|n| Some((n.to_owned(), EntityTypeName::from_str(n).ok()?)));
        Self(parsed.collect())
    }

    /// Builds an entity uid from a type name and a raw id, typed: the id is
    /// kept exactly, whatever characters it holds.
    pub fn uid(&self, type_name: &str, id: &str) -> Result<EntityUid, MappingError> {
        let type_name = match self.0.get(type_name) {
            Some(parsed) => parsed.clone(),
            None => EntityTypeName::from_str(type_name).map_err(|e| MappingError::Entity {
                uid: type_name.to_owned(),
                reason: e.to_string(),
            })?,
        };
        Ok(EntityUid::from_type_name_and_id(
            type_name,
            EntityId::new(id),
        ))
    }
}

/// The principal as the request builds it: uid, attributes, parents.
struct PrincipalParts {
    uid: EntityUid,
    attrs: Vec<(&'static str, Value)>,
    parents: Vec<EntityUid>,
}

fn principal(principal: &Principal, types: &TypeNames) -> Result<PrincipalParts, MappingError> {
    match principal {
        Principal::User(user) => user_parts(user, types),
        Principal::Workload(workload) => workload_parts(workload, types),
        Principal::Anonymous => Ok(PrincipalParts {
            uid: types.uid("Anonymous", ANONYMOUS)?,
            attrs: Vec::new(),
            parents: Vec::new(),
        }),
    }
}

fn user_parts(user: &User, types: &TypeNames) -> Result<PrincipalParts, MappingError> {
    let parents = user
        .groups
        .iter()
        .map(|g| types.uid("Group", g))
        .collect::<Result<Vec<_>, _>>()?;
    let mut attrs = vec![("source", cedar::string(user.source.name()))];
    let optional = [
        ("email", &user.email),
        ("name", &user.display_name),
        ("uid", &user.uid),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            attrs.push((key, cedar::string(value)));
        }
    }
    let entitlements = user.entitlements.iter().map(|e| cedar::string(e));
    attrs.push(("entitlements", cedar::set(entitlements)));
    Ok(PrincipalParts {
        uid: types.uid("User", &user.name)?,
        attrs,
        parents,
    })
}

fn workload_parts(workload: &Workload, types: &TypeNames) -> Result<PrincipalParts, MappingError> {
    let parents = workload
        .namespace
        .iter()
        .map(|n| types.uid("Namespace", n))
        .collect::<Result<Vec<_>, _>>()?;
    let mut attrs = vec![("trust_domain", cedar::string(&workload.trust_domain))];
    if let Some(ns) = &workload.namespace {
        attrs.push(("namespace", cedar::string(ns)));
    }
    if let Some(sa) = &workload.service_account {
        attrs.push(("service_account", cedar::string(sa)));
    }
    Ok(PrincipalParts {
        uid: types.uid("Workload", &workload.id)?,
        attrs,
        parents,
    })
}

fn resource_attrs(facts: &RequestFacts) -> Vec<(&'static str, Value)> {
    match (&facts.http, facts.kind) {
        (Some(http), Kind::Http) => vec![
            ("host", cedar::string(&http.host.name)),
            ("path", cedar::string(&http.path.path)),
        ],
        _ => Vec::new(),
    }
}

/// The entities one decision may look at: the request's own principal and
/// resource, and from the store every wanted entity with all of its
/// ancestors (what `in` and attribute lookups need, and no more). Entities
/// the request builds itself win over a stored one with the same uid.
struct Slice {
    entities: Vec<Arc<Entity>>,
    seen: HashSet<EntityUID>,
}

impl Slice {
    fn new<'a>(own: impl IntoIterator<Item = &'a EntityUid>) -> Self {
        Self {
            entities: Vec::with_capacity(8),
            seen: own.into_iter().map(|u| u.as_ref().clone()).collect(),
        }
    }

    fn push(&mut self, entity: Arc<Entity>) {
        self.entities.push(entity);
    }

    /// Adds `wanted` and their ancestors from the store; returns the
    /// ancestors (every one, also those already in the slice).
    fn add_from_store(
        &mut self,
        store: &StoreEntities,
        wanted: &[EntityUid],
    ) -> HashSet<EntityUID> {
        let mut ancestors = HashSet::new();
        for uid in wanted {
            ancestors.insert(uid.as_ref().clone());
            let Some(found) = store.get(uid.as_ref()) else {
                continue;
            };
            for ancestor in found.ancestors() {
                ancestors.insert(ancestor.clone());
                if let Some(entity) = store.get(ancestor) {
                    self.add(entity);
                }
            }
            self.add(found);
        }
        ancestors
    }

    fn add(&mut self, entity: &Arc<Entity>) {
        if self.seen.insert(entity.uid().clone()) {
            self.entities.push(Arc::clone(entity));
        }
    }
}
