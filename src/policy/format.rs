//! Formatting of policy files with Cedar's own formatter, so reviews see
//! one layout. `validate --format` reports files that differ; `format`
//! rewrites them.

use std::path::{Path, PathBuf};

use cedar_policy_formatter::{policies_str_to_pretty, Config};

use super::files::PolicyDir;
use super::LoadError;

/// Line width and indent of the formatted files.
const LINE_WIDTH: usize = 80;
const INDENT: isize = 2;

/// Every `.cedar` file whose text differs from its formatted form, with
/// the formatted text.
pub fn unformatted(dir: &Path) -> Result<Vec<(PathBuf, String)>, LoadError> {
    let files = PolicyDir::read(dir)?;
    let config = Config {
        line_width: LINE_WIDTH,
        indent_width: INDENT,
    };
    let mut differ = Vec::new();
    for (path, text) in files.policy_files() {
        let pretty = policies_str_to_pretty(text, &config).map_err(|e| LoadError::Syntax {
            path: path.clone(),
            line: super::files::label_line(e.as_ref(), text, 0).unwrap_or(1),
            reason: e.to_string(),
        })?;
        if pretty.trim_end() != text.trim_end() {
            differ.push((path.clone(), pretty));
        }
    }
    Ok(differ)
}
