//! The policy set: schema, policies and entities read from one folder,
//! validated strictly, and frozen into a [`PolicyStore`] that decisions
//! share.
//!
//! Loading is all-or-nothing and happens off the request path: a store is
//! either complete and valid or not built at all, and every error names the
//! file, the line and, where there is one, the policy id. Swapping stores
//! while serving is left to the reload module.

mod annotations;
mod files;
pub mod format;
pub mod index;
mod links;
pub mod loader;
mod parse;
mod routes_file;
mod statements;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cedar_policy::{
    Entities, PolicyId, PolicySet, Schema, ValidationMode, ValidationWarning, Validator,
};

pub use annotations::DenyAnnotation;
use files::PolicyDir;
pub use index::PolicyIndex;
pub use parse::Batches;

use crate::request::routes::RouteConfig;

/// Entity types built from each request; an entities file may not define
/// them, or it could grant a user groups that the identity layer did not.
pub const REQUEST_TYPES: &[&str] = &["User", "Workload", "Anonymous", "Path", "Endpoint"];

/// Why a policy folder could not be loaded; the previous set keeps serving.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path}:{line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}:{line}: policy `{id}`: {reason}")]
    Policy {
        path: PathBuf,
        line: usize,
        id: String,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Entities { path: PathBuf, reason: String },
    #[error("route `{route}`: {reason}")]
    Route { route: String, reason: String },
}

/// A loaded, validated policy set and everything decided with it.
#[derive(Debug)]
pub struct PolicyStore {
    /// Every policy (static ones, then template links), filed by scope so
    /// that a request evaluates only candidates. The index holds the
    /// policies; there is no other copy.
    pub index: PolicyIndex,
    pub schema: Schema,
    /// Entities from `entities.json` plus the schema's actions, with their
    /// ancestors computed.
    pub entities: Entities,
    /// Short content hash of every file, named in each decision.
    pub version: String,
    pub policy_count: usize,
    /// Status and message overrides of forbid policies.
    pub deny_annotations: HashMap<PolicyId, DenyAnnotation>,
    /// Where each policy came from, for messages.
    pub origins: HashMap<PolicyId, (PathBuf, usize)>,
    pub loaded_at: SystemTime,
    pub dir: PathBuf,
    /// The route table: the config's `request.routes`, then the folder's
    /// `routes.yaml` (which reloads with the policies).
    pub routes: Vec<RouteConfig>,
    /// Entity type names requests are built with, parsed once.
    pub type_names: crate::mapping::TypeNames,
    /// The entities of `entities`, shared with each request's slice.
    pub shared_entities: crate::mapping::StoreEntities,
    /// The ids each batch of policy text gave, for the next reload.
    pub batches: Batches,
}

impl PolicyStore {
    /// Loads and validates a policy folder. `routes` (from the config) and
    /// the folder's `routes.yaml` are checked against the schema's actions.
    pub fn load(dir: &Path, routes: &[RouteConfig]) -> Result<Self, LoadError> {
        Self::load_after(dir, routes, None)
    }

    /// As [`PolicyStore::load`], taking the unchanged policy text of
    /// `previous` (the set serving from the same folder) from it: shared
    /// instead of parsed again, and not validated again.
    pub fn reload(
        dir: &Path,
        routes: &[RouteConfig],
        previous: &PolicyStore,
    ) -> Result<Self, LoadError> {
        Self::load_after(dir, routes, Some(previous).filter(|p| p.dir == dir))
    }

    fn load_after(
        dir: &Path,
        routes: &[RouteConfig],
        previous: Option<&PolicyStore>,
    ) -> Result<Self, LoadError> {
        let files = PolicyDir::read(dir)?;
        let schema = files.schema()?;
        let validator = Validator::new(schema.clone());
        let parse::Parsed {
            statics,
            templates,
            mut origins,
            bases,
            batches,
        } = parse::policies(&files, &validator, previous)?;
        // Templates and links are validated on every load, together.
        let mut linked = PolicySet::new();
        let template_count = templates.len();
        for template in templates {
            linked.add_template(template).map_err(|e| LoadError::Io {
                path: dir.to_owned(),
                reason: e.to_string(),
            })?;
        }
        if let Some((path, text)) = files.links() {
            links::apply(&mut linked, &mut origins, path, text)?;
        }
        validate(&linked, &validator, &origins, &bases, &files)?;
        let links: Vec<_> = linked.policies().map(|p| p.as_ref().clone()).collect();
        drop(linked);
        let index = PolicyIndex::from_policies(statics.into_iter().chain(links));
        let deny_annotations = annotations::read(&index, &origins)?;
        let mut routes = routes.to_vec();
        if let Some((path, text)) = files.routes() {
            routes.extend(routes_file::read(path, text)?);
        }
        check_routes(&routes, &schema)?;
        let (shared_entities, entities) =
            crate::mapping::StoreEntities::share(files.entities(&schema)?).map_err(|reason| {
                LoadError::Entities {
                    path: dir.join(files::ENTITIES_FILE),
                    reason,
                }
            })?;
        Ok(Self {
            batches,
            shared_entities,
            policy_count: index.len() + template_count,
            version: files.version(),
            index,
            schema,
            entities,
            deny_annotations,
            origins,
            loaded_at: SystemTime::now(),
            dir: dir.to_owned(),
            type_names: crate::mapping::TypeNames::new(
                routes
                    .iter()
                    .filter_map(|r| Some(r.resource.as_ref()?.entity_type.as_str())),
            ),
            routes,
        })
    }

    /// The version a folder would load as, without parsing it: a cheap
    /// check for whether a reload is needed.
    pub fn version_of(dir: &Path) -> Result<String, LoadError> {
        Ok(PolicyDir::read(dir)?.version())
    }

    /// Every template, in no particular order.
    pub fn templates(&self) -> impl Iterator<Item = &cedar_policy::Template> {
        parse::templates(&self.batches)
    }

    /// `file:line` of a policy, for logs.
    pub fn origin(&self, id: &PolicyId) -> Option<String> {
        let (path, line) = self.origins.get(id)?;
        Some(format!("{}:{line}", path.display()))
    }
}

type Origins = HashMap<PolicyId, (PathBuf, usize)>;

/// Byte offset, in its file, of the batch each policy was parsed from:
/// Cedar's source spans count from there. Only needed while loading.
type Bases = HashMap<PolicyId, usize>;

/// Strict validation against the schema; the first error is reported with
/// the line it points at. Warnings that mean a policy is wrong are refused
/// too: a policy that can never apply, an action applied where the schema
/// says it cannot be, and bidirectional control characters (which make
/// reviewed text read differently from what Cedar parses).
fn validate(
    policies: &PolicySet,
    validator: &Validator,
    origins: &Origins,
    bases: &Bases,
    files: &PolicyDir,
) -> Result<(), LoadError> {
    if policies.is_empty() {
        return Ok(());
    }
    let result = validator.validate(policies, ValidationMode::Strict);
    let error = result
        .validation_errors()
        .map(|e| (e.policy_id(), e as &(dyn miette::Diagnostic + 'static)))
        .chain(
            result
                .validation_warnings()
                .filter(|w| is_refused(w))
                .map(|w| (w.policy_id(), w as &(dyn miette::Diagnostic + 'static))),
        )
        .next();
    let Some((id, error)) = error else {
        return Ok(());
    };
    let (path, start) = origins.get(id).cloned().unwrap_or_default();
    // A linked policy has no batch of its own: it is reported at its link.
    let line = bases
        .get(id)
        .zip(files.text(&path))
        .and_then(|(base, text)| files::label_line(error, text, *base))
        .unwrap_or(start);
    Err(LoadError::Policy {
        path,
        line,
        id: id.to_string(),
        reason: files::flatten(error),
    })
}

fn is_refused(warning: &ValidationWarning) -> bool {
    matches!(
        warning,
        ValidationWarning::ImpossiblePolicy(_)
            | ValidationWarning::InvalidActionApplication(_)
            | ValidationWarning::BidiCharsInString(_)
            | ValidationWarning::BidiCharsInIdentifier(_)
    )
}

fn check_routes(routes: &[RouteConfig], schema: &Schema) -> Result<(), LoadError> {
    for route in routes {
        let known = schema.actions().any(|a| a.id().unescaped() == route.action);
        if !known {
            return Err(LoadError::Route {
                route: route.path.clone(),
                reason: format!("action `{}` is not in the schema", route.action),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
