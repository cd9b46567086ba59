//! `routes.yaml` beside the policies: the part of the route table that
//! changes with the policies and so reloads with them (the config file's
//! `request.routes` needs a restart).
//!
//! ```yaml
//! routes:
//!   - path: /api/documents/{id}
//!     methods: [GET]
//!     action: document.read
//!     resource: { type: Document, id: "{id}" }
//! ```

use std::path::Path;

use serde::Deserialize;

use super::files::{line_of, parse_yaml};
use super::LoadError;
use crate::request::routes::RouteConfig;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesFile {
    routes: Vec<RouteConfig>,
}

/// Parses and checks the routes of `text` (the file at `path`); errors
/// name the file and line.
pub fn read(path: &Path, text: &str) -> Result<Vec<RouteConfig>, LoadError> {
    let file: RoutesFile = parse_yaml(path, text)?;
    for route in &file.routes {
        route.check().map_err(|reason| LoadError::Syntax {
            path: path.to_owned(),
            line: line_of(text, &route.path),
            reason,
        })?;
    }
    Ok(file.routes)
}
