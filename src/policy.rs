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
mod routes_file;
mod statements;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use cedar_policy::{
    Entities, Policy, PolicyId, PolicySet, Schema, Template, ValidationMode, ValidationWarning,
    Validator,
};

pub use annotations::DenyAnnotation;
use files::{line_of, PolicyDir};
pub use index::PolicyIndex;

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
    pub policies: PolicySet,
    /// `policies` filed by scope, so a request evaluates only candidates.
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
        let Parsed {
            set: mut policies,
            mut origins,
            bases,
            batches,
            already_valid,
        } = parse_policies(&files, previous)?;
        if let Some((path, text)) = files.links() {
            links::apply(&mut policies, &mut origins, path, text)?;
        }
        let unvalidated = unvalidated(&policies, &already_valid);
        let to_validate = unvalidated.as_ref().unwrap_or(&policies);
        validate(to_validate, &schema, &origins, &bases, &files)?;
        let deny_annotations = annotations::read(&policies, &origins)?;
        let mut routes = routes.to_vec();
        if let Some((path, text)) = files.routes() {
            routes.extend(routes_file::read(path, text)?);
        }
        check_routes(&routes, &schema)?;
        let (shared_entities, entities) =
            crate::mapping::StoreEntities::share(&files.entities(&schema)?).map_err(|reason| {
                LoadError::Entities {
                    path: dir.join(files::ENTITIES_FILE),
                    reason,
                }
            })?;
        Ok(Self {
            batches,
            shared_entities,
            policy_count: policies.policies().count() + policies.templates().count(),
            version: files.version(),
            index: PolicyIndex::build(&policies),
            policies,
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

/// Policy and template ids of each batch of policy text (see the
/// statements module), keyed by the hash of the schema and the batch.
pub type Batches = HashMap<statements::Key, Vec<PolicyId>>;

/// What reading the `.cedar` files gives.
#[derive(Default)]
struct Parsed {
    set: PolicySet,
    origins: Origins,
    bases: Bases,
    batches: Batches,
    /// Static policies taken from the previous load, validated there.
    already_valid: HashSet<PolicyId>,
}

/// A policy or template of one batch.
enum Item {
    Static(Policy),
    Template(Template),
}

impl Item {
    fn annotated_id(&self) -> Option<&str> {
        match self {
            Self::Static(p) => p.annotation("id"),
            Self::Template(t) => t.annotation("id"),
        }
    }
}

/// Reads every `.cedar` file a batch of statements at a time and gives each
/// policy its `@id`, or `<file>:<line>` without one. A batch whose schema
/// and text are those of a batch of `previous` (the same folder's serving
/// set) is taken from it instead of being parsed: its policies are shared,
/// not copied, and were validated against the same schema. Duplicate ids
/// are an error.
fn parse_policies(files: &PolicyDir, previous: Option<&PolicyStore>) -> Result<Parsed, LoadError> {
    let mut parsed = Parsed::default();
    for (path, text) in files.policy_files() {
        let mut namer = Namer::new(path, text);
        for range in statements::batches(text, statements::BATCH) {
            let batch = &text[range.clone()];
            let key = statements::key(files.schema_text(), batch);
            let reused = previous.and_then(|p| reuse(p, p.batches.get(&key)?));
            let was_valid = reused.is_some();
            let items = match reused {
                Some(items) => items,
                None => parse_batch(batch).map_err(|e| LoadError::Syntax {
                    path: path.clone(),
                    line: files::label_line(e.as_ref(), text, range.start).unwrap_or(1),
                    reason: files::flatten(e.as_ref()),
                })?,
            };
            let mut ids = Vec::with_capacity(items.len());
            for item in items {
                let line = namer.line(item.annotated_id());
                let id = namer.id(item.annotated_id(), line);
                if was_valid && matches!(item, Item::Static(_)) {
                    parsed.already_valid.insert(id.clone());
                }
                parsed.add(item, id.clone(), path, line)?;
                parsed.bases.insert(id.clone(), range.start);
                ids.push(id);
            }
            parsed.batches.insert(key, ids);
        }
    }
    Ok(parsed)
}

/// The policies and templates of one batch, statics first, as parsed.
fn parse_batch(batch: &str) -> Result<Vec<Item>, Box<cedar_policy::ParseErrors>> {
    let set = PolicySet::from_str(batch).map_err(Box::new)?;
    let statics = set.policies().map(|p| Item::Static(p.clone()));
    let templates = set.templates().map(|t| Item::Template(t.clone()));
    Ok(statics.chain(templates).collect())
}

/// The items of a batch of `previous`, or `None` if one is missing.
fn reuse(previous: &PolicyStore, ids: &[PolicyId]) -> Option<Vec<Item>> {
    let set = &previous.policies;
    ids.iter()
        .map(|id| match set.policy(id) {
            Some(p) => Some(Item::Static(p.clone())),
            None => set.template(id).map(|t| Item::Template(t.clone())),
        })
        .collect()
}

impl Parsed {
    /// Adds `item` as `id`, refusing an id already used.
    fn add(&mut self, item: Item, id: PolicyId, path: &Path, line: usize) -> Result<(), LoadError> {
        let fail = |reason: String| LoadError::Policy {
            path: path.to_owned(),
            line,
            id: id.to_string(),
            reason,
        };
        if let Some((first, first_line)) = self.origins.get(&id) {
            let at = format!("{}:{first_line}", first.display());
            return Err(fail(format!("duplicate id, first used at {at}")));
        }
        let added = match item {
            Item::Static(p) if p.id() == &id => self.set.add(p),
            Item::Static(p) => self.set.add(Policy::new_id(&p, id.clone())),
            Item::Template(t) if t.id() == &id => self.set.add_template(t),
            Item::Template(t) => self.set.add_template(Template::new_id(&t, id.clone())),
        };
        added.map_err(|e| fail(e.to_string()))?;
        self.origins.insert(id, (path.to_owned(), line));
        Ok(())
    }
}

/// Gives the policies of one file, batch after batch, their final ids and
/// lines.
struct Namer<'a> {
    file: String,
    text: &'a str,
    lines: files::PolicyLines,
    seen_unnamed: usize,
    seen_ids: HashMap<String, usize>,
}

impl<'a> Namer<'a> {
    fn new(path: &Path, text: &'a str) -> Self {
        Self {
            file: path
                .file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
            text,
            lines: files::PolicyLines::scan(text),
            seen_unnamed: 0,
            seen_ids: HashMap::new(),
        }
    }

    /// The final id of a policy found at `line`.
    fn id(&self, annotated: Option<&str>, line: usize) -> PolicyId {
        PolicyId::new(annotated.map_or_else(|| format!("{}:{line}", self.file), str::to_owned))
    }

    fn line(&mut self, annotated: Option<&str>) -> usize {
        match annotated {
            Some(id) => {
                let seen = self.seen_ids.entry(id.to_owned()).or_default();
                let line = self.lines.of_id(id, *seen);
                *seen += 1;
                // An id with escapes is spelt differently in the text.
                line.unwrap_or_else(|| line_of(self.text, &format!("@id(\"{id}\")")))
            }
            None => {
                self.seen_unnamed += 1;
                self.lines.of_unnamed(self.seen_unnamed).unwrap_or(1)
            }
        }
    }
}

/// The part of `policies` to validate: all but the static policies in
/// `already_valid`, or `None` (validate everything) when that is all of them
/// anyway or the subset cannot be built.
fn unvalidated(policies: &PolicySet, already_valid: &HashSet<PolicyId>) -> Option<PolicySet> {
    if already_valid.is_empty() {
        return None;
    }
    let mut set = PolicySet::new();
    for template in policies.templates() {
        set.add_template(template.clone()).ok()?;
    }
    for policy in policies.policies() {
        match policy.template_id() {
            Some(template) => {
                let slots = policy.template_links()?;
                set.link(template.clone(), policy.id().clone(), slots)
                    .ok()?;
            }
            None if already_valid.contains(policy.id()) => {}
            None => set.add(policy.clone()).ok()?,
        }
    }
    Some(set)
}

/// Strict validation against the schema; the first error is reported with
/// the line it points at. Warnings that mean a policy is wrong are refused
/// too: a policy that can never apply, an action applied where the schema
/// says it cannot be, and bidirectional control characters (which make
/// reviewed text read differently from what Cedar parses).
fn validate(
    policies: &PolicySet,
    schema: &Schema,
    origins: &Origins,
    bases: &Bases,
    files: &PolicyDir,
) -> Result<(), LoadError> {
    let result = Validator::new(schema.clone()).validate(policies, ValidationMode::Strict);
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
