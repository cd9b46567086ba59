//! The route table: host, path pattern and methods mapped to a named action
//! and a typed resource, so policies can speak of `document.read` on
//! `Document::"42"` instead of `GET` on a path.
//!
//! Patterns are matched against the canonical path, segment by segment:
//! `{name}` captures one segment, a final `*` matches the rest. Captured
//! values become entity ids through Cedar's typed API, never through policy
//! source text. Whether the action exists in the schema is checked when
//! policies load.

use std::str::FromStr;

use serde::Deserialize;

/// One route as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Exact host (lower-case, no port); any host when absent.
    #[serde(default)]
    pub host: Option<String>,
    /// Path pattern such as `/api/documents/{id}`.
    pub path: String,
    /// Methods this route covers; any method when empty.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Cedar action id, for example `document.read`.
    pub action: String,
    /// Typed resource; the path resource when absent.
    #[serde(default)]
    pub resource: Option<ResourceTemplate>,
}

/// A resource built from captured path segments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceTemplate {
    /// Cedar entity type, for example `Document`.
    #[serde(rename = "type")]
    pub entity_type: String,
    /// Entity id with `{capture}` placeholders, for example `{id}`.
    pub id: String,
}

/// What a matching route yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub action: String,
    /// Entity type and id of the resource, when the route names one.
    pub resource: Option<(String, String)>,
}

impl RouteConfig {
    /// Refuses a route that could never match or build a resource.
    pub fn check(&self) -> Result<(), String> {
        let at = || format!("route `{}`", self.path);
        if !self.path.starts_with('/') {
            return Err(format!("{}: path must start with `/`", at()));
        }
        if let Some(resource) = &self.resource {
            cedar_policy::EntityTypeName::from_str(&resource.entity_type)
                .map_err(|e| format!("{}: resource type: {e}", at()))?;
            for name in placeholders(&resource.id) {
                let captured = self.path.split('/').any(|s| s == format!("{{{name}}}"));
                if !captured {
                    return Err(format!(
                        "{}: `{{{name}}}` is not captured by the path",
                        at()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Matches one request; methods are compared upper-cased.
    pub fn matches(&self, host: &str, method: &str, path: &str) -> Option<RouteMatch> {
        if self
            .host
            .as_deref()
            .is_some_and(|h| !h.eq_ignore_ascii_case(host))
        {
            return None;
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
        {
            return None;
        }
        let captures = match_path(&self.path, path)?;
        let resource = self.resource.as_ref().map(|r| {
            let mut id = r.id.clone();
            for (name, value) in &captures {
                id = id.replace(&format!("{{{name}}}"), value);
            }
            (r.entity_type.clone(), id)
        });
        Some(RouteMatch {
            action: self.action.clone(),
            resource,
        })
    }
}

/// First matching route of a table.
pub fn find(routes: &[RouteConfig], host: &str, method: &str, path: &str) -> Option<RouteMatch> {
    routes.iter().find_map(|r| r.matches(host, method, path))
}

/// Segment-wise match; returns the captures.
fn match_path<'a>(pattern: &'a str, path: &'a str) -> Option<Vec<(&'a str, &'a str)>> {
    let mut captures = Vec::new();
    let mut want = pattern.split('/').skip(1);
    let mut got = path.split('/').skip(1);
    loop {
        match (want.next(), got.next()) {
            (Some("*"), Some(_)) => return Some(captures),
            (Some(w), Some(g)) if is_capture(w) && !g.is_empty() => {
                captures.push((&w[1..w.len() - 1], g));
            }
            (Some(w), Some(g)) if w == g => {}
            (None, None) => return Some(captures),
            _ => return None,
        }
    }
}

fn is_capture(segment: &str) -> bool {
    segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}')
}

fn placeholders(template: &str) -> Vec<&str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> RouteConfig {
        RouteConfig {
            host: Some("api.example.test".into()),
            path: path.into(),
            methods: vec!["GET".into()],
            action: "document.read".into(),
            resource: Some(ResourceTemplate {
                entity_type: "Document".into(),
                id: "{id}".into(),
            }),
        }
    }

    #[test]
    fn capture_becomes_the_resource_id() {
        let m = route("/api/documents/{id}")
            .matches("api.example.test", "GET", "/api/documents/42")
            .unwrap();
        assert_eq!(m.resource, Some(("Document".into(), "42".into())));
    }

    #[test]
    fn other_host_method_or_shape_does_not_match() {
        let r = route("/api/documents/{id}");
        assert!(r
            .matches("other.test", "GET", "/api/documents/42")
            .is_none());
        assert!(r
            .matches("api.example.test", "DELETE", "/api/documents/42")
            .is_none());
        assert!(r
            .matches("api.example.test", "GET", "/api/documents/42/x")
            .is_none());
        assert!(r
            .matches("api.example.test", "GET", "/api/documents")
            .is_none());
    }

    #[test]
    fn capture_with_quote_is_just_an_id() {
        let m = route("/api/documents/{id}")
            .matches("api.example.test", "get", "/api/documents/a\"b")
            .unwrap();
        assert_eq!(m.resource.unwrap().1, "a\"b");
    }

    #[test]
    fn uncaptured_placeholder_or_bad_type_is_refused_at_load() {
        let mut r = route("/api/documents/{doc}");
        assert!(r.check().is_err());
        r = route("/api/documents/{id}");
        r.resource.as_mut().unwrap().entity_type = "Not A Type".into();
        assert!(r.check().is_err());
    }

    #[test]
    fn trailing_star_matches_the_rest() {
        let mut r = route("/static/*");
        r.resource = None;
        assert!(r
            .matches("api.example.test", "GET", "/static/a/b.css")
            .is_some());
    }
}
