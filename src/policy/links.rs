//! Template links: grants written as data in `links.yaml` beside the
//! policies, for example "group finance gets template `folder-reader` on
//! `Path::"/reports"`".
//!
//! Each link names a template by its `@id`, a new policy id, and the
//! entities for the template's `?principal` and `?resource` slots. Links
//! are made before validation, so a linked policy is validated like any
//! other.

use std::collections::HashMap;
use std::path::Path;

use cedar_policy::{EntityUid, PolicyId, PolicySet, SlotId};
use serde::Deserialize;

use super::files::{line_of, parse_yaml, yaml_value_lines};
use super::{LoadError, Origins};
use crate::mapping::{MappingError, TypeNames};

/// The links file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinksFile {
    links: Vec<Link>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    /// Id of the linked policy, as it appears in decisions.
    id: String,
    /// `@id` of the template.
    template: String,
    principal: Option<EntityRef>,
    resource: Option<EntityRef>,
}

/// An entity as `{type, id}`; the id is taken exactly, never parsed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityRef {
    #[serde(rename = "type")]
    entity_type: String,
    id: String,
}

/// Links every entry of `text` (the file at `path`) into `set`.
pub fn apply(
    set: &mut PolicySet,
    origins: &mut Origins,
    path: &Path,
    text: &str,
) -> Result<(), LoadError> {
    let file: LinksFile = parse_yaml(path, text)?;
    let lines = yaml_value_lines(text, "id");
    // Every type the file names, parsed once: Cedar's parser is slow enough
    // to matter at thousands of links.
    let named = file.links.iter().flat_map(|l| [&l.principal, &l.resource]);
    let types = TypeNames::new(named.flatten().map(|e| e.entity_type.as_str()));
    for link in file.links {
        let line = lines
            .get(&link.id)
            .copied()
            .unwrap_or_else(|| line_of(text, &link.id));
        let fail = |reason: String| LoadError::Policy {
            path: path.to_owned(),
            line,
            id: link.id.clone(),
            reason,
        };
        let id = PolicyId::new(&link.id);
        if let Some((first, first_line)) = origins.get(&id) {
            let at = format!("{}:{first_line}", first.display());
            return Err(fail(format!("duplicate id, first used at {at}")));
        }
        let mut slots = HashMap::new();
        if let Some(p) = &link.principal {
            slots.insert(SlotId::principal(), uid(p, &types).map_err(&fail)?);
        }
        if let Some(r) = &link.resource {
            slots.insert(SlotId::resource(), uid(r, &types).map_err(&fail)?);
        }
        set.link(PolicyId::new(&link.template), id.clone(), slots)
            .map_err(|e| fail(e.to_string()))?;
        origins.insert(id, (path.to_owned(), line));
    }
    Ok(())
}

/// The entity of a slot; its id is taken exactly, never parsed.
fn uid(entity: &EntityRef, types: &TypeNames) -> Result<EntityUid, String> {
    types
        .uid(&entity.entity_type, &entity.id)
        .map_err(|e| match e {
            MappingError::Entity { reason, .. } => {
                format!("type `{}`: {reason}", entity.entity_type)
            }
            other => other.to_string(),
        })
}
