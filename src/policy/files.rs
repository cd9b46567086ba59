//! Reading a policy folder from disk and turning parser diagnostics into
//! `file:line` messages.
//!
//! The folder may be a Kubernetes ConfigMap mount, where every file is a
//! symlink through `..data`: names starting with `.` are skipped and links
//! are followed. Everything is read first, so a half-written folder fails
//! as a whole instead of mixing old and new files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cedar_policy::{Entities, Schema};
use miette::Diagnostic;
use sha2::{Digest, Sha256};

use super::{LoadError, REQUEST_TYPES};

const SCHEMA_FILE: &str = "schema.cedarschema";
pub const ENTITIES_FILE: &str = "entities.json";
const LINKS_FILE: &str = "links.yaml";
const ROUTES_FILE: &str = "routes.yaml";

/// The text of every file of one policy folder.
#[derive(Debug)]
pub struct PolicyDir {
    schema: (PathBuf, String),
    policies: Vec<(PathBuf, String)>,
    entities: Option<(PathBuf, String)>,
    links: Option<(PathBuf, String)>,
    routes: Option<(PathBuf, String)>,
}

impl PolicyDir {
    /// Reads the schema, the `.cedar` files (in name order), entities,
    /// links and routes.
    pub fn read(dir: &Path) -> Result<Self, LoadError> {
        let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, &e))?;
        let mut names: Vec<String> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(dir, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                names.push(name);
            }
        }
        names.sort();
        let read = |name: &str| -> Result<(PathBuf, String), LoadError> {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, &e))?;
            Ok((path, text))
        };
        let policies = names
            .iter()
            .filter(|n| n.ends_with(".cedar"))
            .map(|n| read(n))
            .collect::<Result<Vec<_>, _>>()?;
        let optional = |name: &str| match names.iter().any(|n| n == name) {
            true => read(name).map(Some),
            false => Ok(None),
        };
        Ok(Self {
            schema: read(SCHEMA_FILE)?,
            policies,
            entities: optional(ENTITIES_FILE)?,
            links: optional(LINKS_FILE)?,
            routes: optional(ROUTES_FILE)?,
        })
    }

    /// Parses the Cedar schema.
    pub fn schema(&self) -> Result<Schema, LoadError> {
        let (path, text) = &self.schema;
        let (schema, _warnings) =
            Schema::from_cedarschema_str(text).map_err(|e| LoadError::Syntax {
                path: path.clone(),
                line: label_line(&e, text, 0).unwrap_or(1),
                reason: flatten(&e),
            })?;
        Ok(schema)
    }

    /// The schema's text.
    pub fn schema_text(&self) -> &str {
        &self.schema.1
    }

    /// Every policy file with its text.
    pub fn policy_files(&self) -> impl Iterator<Item = &(PathBuf, String)> {
        self.policies.iter()
    }

    /// The links file, if there is one.
    pub fn links(&self) -> Option<&(PathBuf, String)> {
        self.links.as_ref()
    }

    /// The route table file, if there is one.
    pub fn routes(&self) -> Option<&(PathBuf, String)> {
        self.routes.as_ref()
    }

    /// The text of one file read here.
    pub fn text(&self, path: &Path) -> Option<&str> {
        self.policies
            .iter()
            .chain(&self.links)
            .chain(&self.routes)
            .find(|(p, _)| p == path)
            .map(|(_, text)| text.as_str())
    }

    /// File entities validated against the schema, plus the schema's
    /// action entities, so action groups work in every request.
    pub fn entities(&self, schema: &Schema) -> Result<Entities, LoadError> {
        let actions = schema.action_entities().map_err(|e| LoadError::Entities {
            path: self.schema.0.clone(),
            reason: flatten(&e),
        })?;
        let Some((path, text)) = &self.entities else {
            return Ok(actions);
        };
        let error = |reason: String| LoadError::Entities {
            path: path.clone(),
            reason,
        };
        // Added to the actions in place: one copy of the file's entities,
        // not one parsed and one merged.
        let all = actions
            .add_entities_from_json_str(text, Some(schema))
            .map_err(|e| error(flatten(&e)))?;
        if let Some(e) = all.iter().find(|e| is_request_type(e.uid().type_name())) {
            return Err(error(format!(
                "`{}` is built from each request and cannot be defined here",
                e.uid()
            )));
        }
        Ok(all)
    }

    /// A short hash of every file's name and content.
    pub fn version(&self) -> String {
        let mut hash = Sha256::new();
        let all = std::iter::once(&self.schema)
            .chain(&self.policies)
            .chain(&self.entities)
            .chain(&self.links)
            .chain(&self.routes);
        for (path, text) in all {
            let name = path.file_name().unwrap_or_default();
            hash.update(name.as_encoded_bytes());
            hash.update([0]);
            hash.update(text.as_bytes());
            hash.update([0]);
        }
        hex::encode(&hash.finalize()[..6])
    }
}

fn is_request_type(name: &cedar_policy::EntityTypeName) -> bool {
    REQUEST_TYPES.contains(&name.basename()) && name.namespace().is_empty()
}

fn io_error(path: &Path, e: &std::io::Error) -> LoadError {
    LoadError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// One-line message of a diagnostic and its causes and help.
pub fn flatten(e: &(dyn Diagnostic + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if let Some(help) = e.help() {
        text.push_str(&format!(" (help: {help})"));
    }
    if let Some(related) = e.related() {
        for r in related {
            text.push_str("; ");
            text.push_str(&r.to_string());
        }
    }
    text
}

/// Line (1-based) in `text` of a diagnostic's first label, for a
/// diagnostic about the part of `text` that starts at byte `base`.
pub fn label_line(e: &(dyn Diagnostic + 'static), text: &str, base: usize) -> Option<usize> {
    label_offset(e).map(|offset| line_at(text, base.saturating_add(offset)))
}

fn label_offset(e: &(dyn Diagnostic + 'static)) -> Option<usize> {
    if let Some(label) = e.labels().and_then(|mut l| l.next()) {
        return Some(label.offset());
    }
    let mut related = e.related()?;
    related.find_map(|r| r.labels().and_then(|mut l| l.next()).map(|l| l.offset()))
}

fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Line of the first occurrence of `needle`, or 1.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle).map_or(1, |offset| line_at(text, offset))
}

/// Where the policies of one `.cedar` file start, found in one pass (a
/// search per policy would make loading quadratic in the file's size).
#[derive(Debug, Default)]
pub struct PolicyLines {
    /// `@id("…")` annotation text → lines of its occurrences, in order.
    ids: HashMap<String, Vec<usize>>,
    /// Lines of the `permit`/`forbid` keywords (at the start of a line)
    /// of policies without an `@id` annotation, in order.
    unnamed: Vec<usize>,
}

impl PolicyLines {
    pub fn scan(text: &str) -> Self {
        let mut lines = Self::default();
        let mut annotated = false;
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix("@id(\"") {
                annotated = true;
                if let Some(end) = rest.find("\")") {
                    let id = rest[..end].to_owned();
                    lines.ids.entry(id).or_default().push(index + 1);
                }
            }
            if trimmed.starts_with("permit") || trimmed.starts_with("forbid") {
                if !annotated {
                    lines.unnamed.push(index + 1);
                }
                annotated = false;
            }
        }
        lines
    }

    /// Line of the `n`th (0-based) policy annotated `@id("<id>")`: a
    /// duplicate id is reported at its own line, not the first one's.
    pub fn of_id(&self, id: &str, n: usize) -> Option<usize> {
        self.ids.get(id)?.get(n).copied()
    }

    /// Line where the `n`th (1-based) policy without an `@id` starts.
    pub fn of_unnamed(&self, n: usize) -> Option<usize> {
        self.unnamed.get(n.checked_sub(1)?).copied()
    }
}

/// Parses a YAML file of the folder (links, routes) into its typed form;
/// an error names the file and line.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, LoadError> {
    serde_yaml_ng::from_str(text).map_err(|e| LoadError::Syntax {
        path: path.to_owned(),
        line: e.location().map_or(1, |l| l.line()),
        reason: e.to_string(),
    })
}

/// `<key>: <value>` lines of a YAML file (value unquoted) → line of the
/// first occurrence, found in one pass.
pub fn yaml_value_lines(text: &str, key: &str) -> HashMap<String, usize> {
    let mut found = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        let Some(value) = trimmed
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
        else {
            continue;
        };
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        found.entry(value.to_owned()).or_insert(index + 1);
    }
    found
}
