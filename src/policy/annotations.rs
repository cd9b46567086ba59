//! Annotations that shape a deny: `@http_status("401")` and
//! `@message("...")` on a forbid policy, for example to ask for step-up
//! authentication. They are checked when policies load, so a typo cannot
//! surface as a strange status on a live request.

use std::collections::HashMap;

use cedar_policy::PolicyId;
use cedar_policy_core::ast::{self, Effect};

use super::{LoadError, Origins, PolicyIndex};

/// Annotation keys this server reads.
pub const STATUS_KEY: &str = "http_status";
pub const MESSAGE_KEY: &str = "message";

/// Longest deny message accepted: it is sent to clients.
const MAX_MESSAGE_BYTES: usize = 256;

/// How a forbid policy wants its deny answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyAnnotation {
    pub http_status: Option<u16>,
    pub message: Option<String>,
}

/// Reads and checks the annotations of every policy (a linked policy has
/// its template's).
pub fn read(
    policies: &PolicyIndex,
    origins: &Origins,
) -> Result<HashMap<PolicyId, DenyAnnotation>, LoadError> {
    let mut found = HashMap::new();
    for policy in policies.policies() {
        let status = annotation(policy, STATUS_KEY);
        let message = annotation(policy, MESSAGE_KEY);
        if status.is_none() && message.is_none() {
            continue;
        }
        let id = PolicyId::new(policy.id().as_ref());
        let fail = |reason: String| {
            let (path, line) = origins.get(&id).cloned().unwrap_or_default();
            LoadError::Policy {
                path,
                line,
                id: id.to_string(),
                reason,
            }
        };
        if policy.effect() != Effect::Forbid {
            return Err(fail(
                "deny annotations are only allowed on forbid policies".into(),
            ));
        }
        let annotation = DenyAnnotation {
            http_status: status.map(parse_status).transpose().map_err(fail)?,
            message: message.map(check_message).transpose().map_err(fail)?,
        };
        found.insert(id, annotation);
    }
    Ok(found)
}

fn annotation<'a>(policy: &'a ast::Policy, key: &str) -> Option<&'a str> {
    policy
        .annotations()
        .find(|(k, _)| k.as_ref() == key)
        .map(|(_, v)| v.val.as_str())
}

fn parse_status(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(code) if (400..=599).contains(&code) => Ok(code),
        _ => Err(format!(
            "@{STATUS_KEY}(\"{value}\") must be a status from 400 to 599"
        )),
    }
}

fn check_message(value: &str) -> Result<String, String> {
    if value.len() > MAX_MESSAGE_BYTES || value.chars().any(char::is_control) {
        return Err(format!(
            "@{MESSAGE_KEY} must be at most {MAX_MESSAGE_BYTES} bytes without control characters"
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_must_be_a_client_or_server_error() {
        assert_eq!(parse_status("401"), Ok(401));
        for bad in ["200", "0", "600", "abc", ""] {
            assert!(parse_status(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn message_with_control_characters_is_refused() {
        assert!(check_message("step up\r\nx: y").is_err());
        assert!(check_message("please sign in again").is_ok());
    }
}
