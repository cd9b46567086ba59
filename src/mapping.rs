//! From request facts and identity to a Cedar request: principal, action,
//! resource, context and the slice of entities the decision may look at.
//!
//! Every entity id and value is built with Cedar's typed API from the raw
//! strings, never by formatting Cedar source, so any UTF-8 survives exactly
//! and no request value can become policy text. Evaluating the request is
//! left to the decision module.

mod context;
mod extension;
mod token;

pub use context::datetime;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression,
};

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
    let (principal_entity, principal_parents) = principal_entity(&identity.principal, types)?;
    let principal = principal_entity.uid();
    let resource_entity = resource_entity(&resource, facts)?;
    let context = context::build(facts, identity, config)?;

    let mut wanted: Vec<EntityUid> = principal_parents;
    wanted.push(action.clone());
    let entities = slice(store, wanted, [principal_entity, resource_entity])?;
    let request = Request::new(
        principal.clone(),
        action.clone(),
        resource.clone(),
        context.clone(),
        None,
    )
    .map_err(|e| MappingError::Request(e.to_string()))?;
    Ok(CedarRequest {
        principal,
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

fn principal_entity(
    principal: &Principal,
    types: &TypeNames,
) -> Result<(Entity, Vec<EntityUid>), MappingError> {
    match principal {
        Principal::User(user) => user_entity(user, types),
        Principal::Workload(workload) => workload_entity(workload, types),
        Principal::Anonymous => {
            let entity = Entity::new_no_attrs(types.uid("Anonymous", ANONYMOUS)?, HashSet::new());
            Ok((entity, Vec::new()))
        }
    }
}

fn user_entity(user: &User, types: &TypeNames) -> Result<(Entity, Vec<EntityUid>), MappingError> {
    let parents = user
        .groups
        .iter()
        .map(|g| types.uid("Group", g))
        .collect::<Result<Vec<_>, _>>()?;
    let mut attrs = vec![("source", string(user.source.name()))];
    let optional = [
        ("email", &user.email),
        ("name", &user.display_name),
        ("uid", &user.uid),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            attrs.push((key, string(value)));
        }
    }
    let entitlements = user.entitlements.iter().map(|e| string(e));
    attrs.push(("entitlements", RestrictedExpression::new_set(entitlements)));
    let entity = entity(types.uid("User", &user.name)?, attrs, &parents)?;
    Ok((entity, parents))
}

fn workload_entity(
    workload: &Workload,
    types: &TypeNames,
) -> Result<(Entity, Vec<EntityUid>), MappingError> {
    let parents = workload
        .namespace
        .iter()
        .map(|n| types.uid("Namespace", n))
        .collect::<Result<Vec<_>, _>>()?;
    let mut attrs = vec![("trust_domain", string(&workload.trust_domain))];
    if let Some(ns) = &workload.namespace {
        attrs.push(("namespace", string(ns)));
    }
    if let Some(sa) = &workload.service_account {
        attrs.push(("service_account", string(sa)));
    }
    let entity = entity(types.uid("Workload", &workload.id)?, attrs, &parents)?;
    Ok((entity, parents))
}

fn resource_entity(resource: &EntityUid, facts: &RequestFacts) -> Result<Entity, MappingError> {
    let attrs = match (&facts.http, facts.kind) {
        (Some(http), Kind::Http) => vec![
            ("host", string(&http.host.name)),
            ("path", string(&http.path.path)),
        ],
        _ => Vec::new(),
    };
    entity(resource.clone(), attrs, &[])
}

fn entity(
    uid: EntityUid,
    attrs: Vec<(&str, RestrictedExpression)>,
    parents: &[EntityUid],
) -> Result<Entity, MappingError> {
    let attrs = attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let parents = parents.iter().cloned().collect();
    Entity::new(uid.clone(), attrs, parents).map_err(|e| MappingError::Entity {
        uid: uid.to_string(),
        reason: e.to_string(),
    })
}

pub(crate) fn string(value: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(value.to_owned())
}

/// The request's own entities plus, from the store, every wanted entity and
/// all of its ancestors: what `in` and attribute lookups need, and no more.
fn slice(
    store: &PolicyStore,
    wanted: Vec<EntityUid>,
    own: [Entity; 2],
) -> Result<Entities, MappingError> {
    let mut seen: HashSet<EntityUid> = own.iter().map(Entity::uid).collect();
    let mut all: Vec<Entity> = own.into();
    for uid in wanted {
        let ancestors = store
            .entities
            .ancestors(&uid)
            .into_iter()
            .flatten()
            .cloned();
        for uid in std::iter::once(uid.clone()).chain(ancestors) {
            if seen.insert(uid.clone()) {
                if let Some(found) = store.entities.get(&uid) {
                    all.push(found.clone());
                }
            }
        }
    }
    Entities::from_entities(all, None).map_err(|e| MappingError::Entity {
        uid: "slice".into(),
        reason: e.to_string(),
    })
}
