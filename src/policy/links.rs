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
use std::str::FromStr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, SlotId};
use serde::Deserialize;

use super::files::{line_of, yaml_value_lines};
use super::{LoadError, Origins};

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
    let file: LinksFile = serde_yaml_ng::from_str(text).map_err(|e| LoadError::Syntax {
        path: path.to_owned(),
        line: e.location().map_or(1, |l| l.line()),
        reason: e.to_string(),
    })?;
    let lines = yaml_value_lines(text, "id");
    let mut types = HashMap::new();
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
            slots.insert(SlotId::principal(), uid(p, &mut types).map_err(&fail)?);
        }
        if let Some(r) = &link.resource {
            slots.insert(SlotId::resource(), uid(r, &mut types).map_err(&fail)?);
        }
        set.link(PolicyId::new(&link.template), id.clone(), slots)
            .map_err(|e| fail(e.to_string()))?;
        origins.insert(id, (path.to_owned(), line));
    }
    Ok(())
}

/// The entity of a slot. Type names are parsed once per file: Cedar's
/// parser is slow enough to matter at thousands of links.
fn uid(
    entity: &EntityRef,
    types: &mut HashMap<String, EntityTypeName>,
) -> Result<EntityUid, String> {
    let type_name = match types.get(&entity.entity_type) {
        Some(parsed) => parsed.clone(),
        None => {
            let parsed = EntityTypeName::from_str(&entity.entity_type)
                .map_err(|e| format!("type `{}`: {e}", entity.entity_type))?;
            types.insert(entity.entity_type.clone(), parsed.clone());
            parsed
        }
    };
    Ok(EntityUid::from_type_name_and_id(
        type_name,
        EntityId::new(&entity.id),
    ))
}
