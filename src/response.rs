//! The CheckResponse Envoy receives for a decision.
//!
//! On allow: status OK and the upstream header changes — the resolved
//! principal set with overwrite semantics so a client-sent copy cannot
//! survive, and identity headers that were not believed removed. On deny:
//! PERMISSION_DENIED (or UNAUTHENTICATED for 401), always with an explicit
//! HTTP status and a small JSON body that names no policy. Network-filter
//! checks get the status only.

use envoy_types::ext_authz::v3::pb::{
    CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue, HeaderValueOption,
    HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::google::rpc;

use crate::authorize::Outcome;
use crate::config::{Config, ResponseConfig};
use crate::identity::Principal;
use crate::request::Kind;

/// gRPC status codes carried inside the CheckResponse.
const OK: i32 = 0;
const PERMISSION_DENIED: i32 = 7;
const UNAUTHENTICATED: i32 = 16;

/// Response header that carries the would-be decision in dry-run.
pub const DRY_RUN_HEADER: &str = "x-cedar-dry-run";

/// Builds the CheckResponse for an outcome. In dry-run a deny is logged
/// but the request is allowed, optionally telling the client what would
/// have happened in [`DRY_RUN_HEADER`].
pub fn build(outcome: &Outcome, config: &Config, dry_run: bool) -> CheckResponse {
    let decision = &outcome.decision;
    let network = outcome
        .facts
        .as_ref()
        .is_some_and(|f| f.kind == Kind::Network);
    if decision.is_allow() || dry_run {
        let http = (!network).then(|| HttpResponse::OkResponse(allow(outcome, config, dry_run)));
        return response(OK, String::new(), http);
    }
    let code = if decision.http_status == 401 {
        UNAUTHENTICATED
    } else {
        PERMISSION_DENIED
    };
    let grpc = outcome
        .facts
        .as_ref()
        .and_then(|f| f.http.as_ref())
        .is_some_and(|h| h.grpc.is_some());
    let http = (!network).then(|| HttpResponse::DeniedResponse(denied(outcome, grpc)));
    response(code, decision.message.clone(), http)
}

fn response(code: i32, message: String, http: Option<HttpResponse>) -> CheckResponse {
    CheckResponse {
        status: Some(rpc::Status {
            code,
            message,
            details: Vec::new(),
        }),
        http_response: http,
        ..Default::default()
    }
}

fn allow(outcome: &Outcome, config: &Config, dry_run: bool) -> OkHttpResponse {
    let mut ok = ok_response(outcome, &config.response);
    if dry_run && config.decision.dry_run_header {
        let decision = &outcome.decision;
        let verdict = match decision.deny {
            None => "allow".to_owned(),
            Some(_) => format!("deny {}", decision.http_status),
        };
        ok.response_headers_to_add
            .push(overwrite(DRY_RUN_HEADER, &verdict));
    }
    ok
}

fn ok_response(outcome: &Outcome, config: &ResponseConfig) -> OkHttpResponse {
    let mut headers = Vec::new();
    let mut remove: Vec<String> = Vec::new();
    let principal = outcome.identity.as_ref().map(|i| &i.principal);
    let (id, kind, groups) = match principal {
        Some(Principal::User(user)) => (
            Some(user.name.as_str()),
            "User",
            encode_groups(&user.groups),
        ),
        Some(Principal::Workload(w)) => (Some(w.id.as_str()), "Workload", String::new()),
        _ => (None, "Anonymous", String::new()),
    };
    headers.push(overwrite(&config.principal_type_header, kind));
    match id {
        Some(id) => headers.push(overwrite(&config.user_header, id)),
        None => remove.push(config.user_header.clone()),
    }
    if groups.is_empty() {
        remove.push(config.groups_header.clone());
    } else {
        headers.push(overwrite(&config.groups_header, &groups));
    }
    if let Some(identity) = &outcome.identity {
        remove.extend(identity.ignored_headers.iter().map(|h| (*h).to_owned()));
    }
    OkHttpResponse {
        headers,
        headers_to_remove: remove,
        ..Default::default()
    }
}

/// Groups as one comma-joined header; `%` and `,` inside a name are
/// percent-encoded so the list splits back unambiguously.
fn encode_groups(groups: &[String]) -> String {
    let escaped: Vec<String> = groups
        .iter()
        .map(|g| g.replace('%', "%25").replace(',', "%2C"))
        .collect();
    escaped.join(",")
}

/// A header that replaces any copy the client sent.
fn overwrite(name: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value: sanitize(value),
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
        ..Default::default()
    }
}

/// Header values cannot carry control characters; Envoy would reject the
/// whole response. They are percent-encoded instead.
fn sanitize(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn denied(outcome: &Outcome, grpc: bool) -> DeniedHttpResponse {
    let decision = &outcome.decision;
    let status = Some(HttpStatus {
        code: i32::from(decision.http_status),
    });
    if grpc {
        // gRPC callers read grpc-status, which Envoy derives from the HTTP
        // status; a JSON body would only confuse their decoder.
        return DeniedHttpResponse {
            status,
            ..Default::default()
        };
    }
    let body = serde_json::json!({
        "status": decision.http_status,
        "error": decision.message,
    });
    DeniedHttpResponse {
        status,
        headers: vec![overwrite("content-type", "application/json")],
        body: body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_with_separator_are_escaped() {
        let groups = vec!["a,b".to_string(), "100%".to_string(), "ops".to_string()];
        assert_eq!(encode_groups(&groups), "a%2Cb,100%25,ops");
    }

    #[test]
    fn control_characters_never_reach_a_header_value() {
        assert_eq!(sanitize("ali\u{7}ce\r\n"), "ali%07ce%0D%0A");
    }

    /// Field cases 17(c) and 18: an internal fault (here: a request that
    /// could not be mapped) is an explicit deny inside a gRPC OK, with an
    /// HTTP status, never a gRPC error or a status-less deny.
    #[test]
    fn internal_fault_is_an_explicit_deny_with_an_http_status() {
        let outcome = crate::authorize::Outcome {
            facts: None,
            identity: None,
            cedar: None,
            refusal: None,
            raw: None,
            fault: Some("cannot build entity".into()),
            decision: crate::decision::Decision::internal(),
            version: "v".into(),
            micros: 0,
        };
        let response = build(&outcome, &Config::default(), false);
        assert_eq!(response.status.map(|s| s.code), Some(7));
        let Some(HttpResponse::DeniedResponse(denied)) = response.http_response else {
            panic!("an HTTP deny is expected");
        };
        assert_eq!(denied.status.map(|s| s.code), Some(403));
    }
}
