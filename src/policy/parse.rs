//! Reading the `.cedar` files into the policies a store keeps, a batch of
//! statements at a time (see the statements module). Each policy is named
//! by its `@id`, or `<file>:<line>` without one; each batch is validated as
//! soon as it is read, so no more than one batch of Cedar's parse exists at
//! once; and a batch that a reload finds unchanged is taken from the
//! serving set instead of being parsed and validated again.
//!
//! A static policy is kept as Cedar's core policy without its `@id`
//! annotation: the policy id already says it, and the annotation map Cedar
//! allocates for that one entry is most of a small policy's memory (about
//! 0.9 KB each, 8 MB at 10,000 policies). Its other annotations stay.
//! Templates are kept whole; there are few of them.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use cedar_policy::{Policy, PolicyId, PolicySet, Template, Validator};
use cedar_policy_core::ast;

use super::files::{self, line_of, PolicyDir};
use super::{statements, validate, Bases, LoadError, Origins, PolicyStore};

/// What one batch of policy text gave, for the next reload.
#[derive(Debug)]
pub struct Batch {
    /// Positions of its static policies in the store's index.
    statics: Range<usize>,
    /// Whether each of those had an `@id`.
    named: Vec<bool>,
    templates: Vec<Template>,
}

/// Batches by the hash of the schema and their text.
pub type Batches = HashMap<statements::Key, Batch>;

/// Every template of `batches`, in no particular order.
pub fn templates(batches: &Batches) -> impl Iterator<Item = &Template> {
    batches.values().flat_map(|b| &b.templates)
}

/// What reading the `.cedar` files gives.
#[derive(Default)]
pub struct Parsed {
    /// Static policies in file order, validated, without `@id`.
    pub statics: Vec<ast::Policy>,
    /// Templates in file order, not yet validated (they are validated with
    /// their links).
    pub templates: Vec<Template>,
    pub origins: Origins,
    pub bases: Bases,
    pub batches: Batches,
}

/// A policy or template of one batch.
enum Item {
    /// Parsed from text now; validated with its batch.
    Parsed(Policy),
    /// Taken from the serving set, where it was validated.
    Kept {
        policy: ast::Policy,
        named: bool,
    },
    Template(Template),
}

impl Item {
    fn annotated_id(&self) -> Option<&str> {
        match self {
            Self::Parsed(p) => p.annotation("id"),
            Self::Kept { policy, named } => named.then(|| policy.id().as_ref()),
            Self::Template(t) => t.annotation("id"),
        }
    }
}

/// Reads every `.cedar` file of `files`, validating each batch with
/// `validator`; `previous` is the set serving from the same folder.
/// Duplicate ids are an error.
pub fn policies(
    files: &PolicyDir,
    validator: &Validator,
    previous: Option<&PolicyStore>,
) -> Result<Parsed, LoadError> {
    let mut parsed = Parsed::default();
    for (path, text) in files.policy_files() {
        let mut namer = Namer::new(path, text);
        for range in statements::batches(text, statements::BATCH) {
            let batch = &text[range.clone()];
            let key = statements::key(files.schema_text(), batch);
            let items = match previous.and_then(|p| reuse(p, p.batches.get(&key)?)) {
                Some(items) => items,
                None => parse_batch(batch).map_err(|e| LoadError::Syntax {
                    path: path.clone(),
                    line: files::label_line(e.as_ref(), text, range.start).unwrap_or(1),
                    reason: files::flatten(e.as_ref()),
                })?,
            };
            let mut to_validate = PolicySet::new();
            let first = parsed.statics.len();
            let (mut named, mut templates) = (Vec::new(), Vec::new());
            for item in items {
                let line = namer.line(item.annotated_id());
                let id = namer.id(item.annotated_id(), line);
                parsed.claim(&id, path, line)?;
                parsed.bases.insert(id.clone(), range.start);
                let fail = |reason: String| policy_error(path, line, &id, reason);
                match item {
                    Item::Parsed(policy) => {
                        named.push(policy.annotation("id").is_some());
                        let kept = keep_static(policy.as_ref().template(), &id);
                        parsed
                            .statics
                            .push(kept.ok_or_else(|| fail("not static".into()))?);
                        let renamed = Policy::new_id(&policy, id.clone());
                        to_validate.add(renamed).map_err(|e| fail(e.to_string()))?;
                    }
                    Item::Kept { policy, named: n } => {
                        named.push(n);
                        let same_id = policy.id() == core_id(&id);
                        let kept = if same_id {
                            Some(policy)
                        } else {
                            keep_static(policy.template(), &id)
                        };
                        parsed
                            .statics
                            .push(kept.ok_or_else(|| fail("not static".into()))?);
                    }
                    Item::Template(t) => {
                        let t = if t.id() == &id {
                            t
                        } else {
                            Template::new_id(&t, id)
                        };
                        templates.push(t.clone());
                        parsed.templates.push(t);
                    }
                }
            }
            validate(
                &to_validate,
                validator,
                &parsed.origins,
                &parsed.bases,
                files,
            )?;
            let statics = first..parsed.statics.len();
            let batch = Batch {
                statics,
                named,
                templates,
            };
            parsed.batches.insert(key, batch);
        }
    }
    Ok(parsed)
}

fn policy_error(path: &Path, line: usize, id: &PolicyId, reason: String) -> LoadError {
    LoadError::Policy {
        path: path.to_owned(),
        line,
        id: id.to_string(),
        reason,
    }
}

/// The policies and templates of one batch, statics first, as parsed.
fn parse_batch(batch: &str) -> Result<Vec<Item>, Box<cedar_policy::ParseErrors>> {
    let set = PolicySet::from_str(batch).map_err(Box::new)?;
    let statics = set.policies().map(|p| Item::Parsed(p.clone()));
    let templates = set.templates().map(|t| Item::Template(t.clone()));
    Ok(statics.chain(templates).collect())
}

/// The items of `batch` of `previous`, or `None` if one is missing.
fn reuse(previous: &PolicyStore, batch: &Batch) -> Option<Vec<Item>> {
    let mut items = Vec::with_capacity(batch.named.len() + batch.templates.len());
    for (at, &named) in batch.statics.clone().zip(&batch.named) {
        let policy = previous.index.policy(at)?.clone();
        items.push(Item::Kept { policy, named });
    }
    items.extend(batch.templates.iter().cloned().map(Item::Template));
    Some(items)
}

/// The static policy of `template` (which has no slots) as kept: named
/// `id`, without its `@id` annotation, sharing its condition.
fn keep_static(template: &ast::Template, id: &PolicyId) -> Option<ast::Policy> {
    static NONE: LazyLock<Arc<ast::Annotations>> =
        LazyLock::new(|| Arc::new(ast::Annotations::new()));
    let others: ast::Annotations = template
        .annotations()
        .filter(|(key, _)| key.as_ref() != "id")
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let annotations = if others.is_empty() {
        Arc::clone(&NONE)
    } else {
        Arc::new(others)
    };
    let body = ast::Template::new_shared(
        core_id(id).clone(),
        template.loc().cloned(),
        annotations,
        template.effect(),
        template.principal_constraint().clone(),
        template.action_constraint().clone(),
        template.resource_constraint().clone(),
        template.non_scope_constraints_arc().cloned(),
    );
    let policy = ast::StaticPolicy::try_from(body).ok()?;
    Some(ast::Policy::from(policy))
}

fn core_id(id: &PolicyId) -> &ast::PolicyID {
    id.as_ref()
}

impl Parsed {
    /// Records where `id` is defined, refusing an id already used.
    fn claim(&mut self, id: &PolicyId, path: &Path, line: usize) -> Result<(), LoadError> {
        if let Some((first, first_line)) = self.origins.get(id) {
            let at = format!("{}:{first_line}", first.display());
            let reason = format!("duplicate id, first used at {at}");
            return Err(policy_error(path, line, id, reason));
        }
        self.origins.insert(id.clone(), (path.to_owned(), line));
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
