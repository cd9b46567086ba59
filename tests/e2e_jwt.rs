#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Verified JWT identity through a real Envoy started from
//! deploy/envoy/envoy-jwt.yaml: Envoy's jwt_authn filter checks tokens
//! signed in the test against a JWKS file written by the test, and passes
//! the verified payload to the real server as metadata. Each test names
//! what it proves and asserts what the client sees, what the upstream
//! received and the server's decision event.

mod signing;
mod support;

use serde_json::{json, Value};
use signing::{jwks, now, TestKey};
use support::echo::header_values;
use support::envoy::{CEDAR_PORT, UPSTREAM_PORT};
use support::*;

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "app.example.test";

/// Reads need a scope; writes need a second factor (401 asks for it).
const POLICIES: &str = r#"
@id("reports-need-scope")
permit (principal is User, action == Action::"GET", resource)
when { context has jwt && context.jwt.scopes.contains("reports:read") };

@id("users-write")
permit (principal is User, action in Action::"write", resource);

@id("writes-need-mfa")
@http_status("401")
@message("second factor required")
forbid (principal, action in Action::"write", resource)
when { context has jwt && !context.jwt.amr.contains("mfa") };
"#;

/// Upstream, server and Envoy for one test, and the issuer's key.
struct Stack {
    key: TestKey,
    upstream: Upstream,
    server: Server,
    envoy: Envoy,
    _dirs: [tempfile::TempDir; 2],
}

impl Stack {
    fn start() -> Self {
        let key = TestKey::generate("e2e");
        let keys = tempfile::tempdir().unwrap();
        std::fs::write(keys.path().join("jwks.json"), jwks(&[&key])).unwrap();
        let policies = tempfile::tempdir().unwrap();
        let schema = repo_root().join("policies/schema.cedarschema");
        std::fs::copy(schema, policies.path().join("schema.cedarschema")).unwrap();
        std::fs::write(policies.path().join("policies.cedar"), POLICIES).unwrap();

        let upstream = Upstream::start();
        let server = Server::start(&format!(
            "policy_dir: \"{}\"\nidentity:\n  jwt_authn: {{issuers: [\"{ISSUER}\"]}}\n",
            policies.path().display()
        ));
        let envoy = Envoy::builder("envoy-jwt.yaml")
            .port(CEDAR_PORT, server.grpc_port())
            .port(UPSTREAM_PORT, upstream.port())
            .certs(keys.path())
            .start();
        let stack = Self {
            key,
            upstream,
            server,
            envoy,
            _dirs: [keys, policies],
        };
        let warm = stack.bearer(
            HttpRequest::get("/reports/warm-up"),
            &stack.token(json!({})),
        );
        stack.envoy.warm_up(&warm, 200);
        stack
    }

    /// A token from the issuer for alice, with `changes` applied.
    fn token(&self, changes: Value) -> String {
        let mut claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now() + 600,
            "iat": now(), "scope": "reports:read profile", "amr": ["pwd", "mfa"],
            "groups": ["staff"],
        });
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        self.key.sign(&claims)
    }

    fn bearer(&self, request: HttpRequest, token: &str) -> HttpRequest {
        request.header("authorization", &format!("Bearer {token}"))
    }

    fn send(&self, request: HttpRequest) -> HttpResponse {
        request.send(self.envoy.http_port())
    }

    /// The requests the upstream received for `path`.
    fn forwarded(&self, path: &str) -> Vec<Value> {
        let requests = self.upstream.requests();
        requests.into_iter().filter(|r| r["path"] == path).collect()
    }
}

#[test]
fn verified_token_claims_reach_the_decision_and_name_the_principal() {
    let stack = Stack::start();
    let request = stack.bearer(HttpRequest::get("/reports/q3"), &stack.token(json!({})));
    let response = stack.send(request);
    assert_eq!(response.status, 200, "{}", response.text());

    let event = stack.server.wait_decision_for_path("/reports/q3");
    assert_eq!(event["decision"], "allow", "{event}");
    assert_eq!(event["principal.type"], "User");
    assert_eq!(event["principal.id"], "alice");
    assert_eq!(event["principal.groups"], "staff");
    assert_eq!(event["identity.source"], "jwt-authn");
    assert_eq!(event["policies"], "reports-need-scope");

    let seen = stack.forwarded("/reports/q3");
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(header_values(&seen[0], "x-auth-user"), vec!["alice"]);
    // forward: false: the credential stops at the proxy.
    assert!(header_values(&seen[0], "authorization").is_empty());
}

#[test]
fn token_without_the_scope_is_denied_by_policy_403() {
    let stack = Stack::start();
    let token = stack.token(json!({"scope": "profile"}));
    let response = stack.send(stack.bearer(HttpRequest::get("/reports/q4"), &token));
    assert_eq!(response.status, 403, "{}", response.text());
    let event = stack.server.wait_decision_for_path("/reports/q4");
    assert_eq!(event["principal.id"], "alice");
    assert_eq!(event["deny.kind"], "no_permit");
    assert!(stack.forwarded("/reports/q4").is_empty());
}

#[test]
fn step_up_forbid_on_amr_answers_401_through_envoy() {
    let stack = Stack::start();
    let password_only = stack.token(json!({"amr": ["pwd"]}));
    let response =
        stack.send(stack.bearer(HttpRequest::new("POST", "/reports/new"), &password_only));
    assert_eq!(response.status, 401, "{}", response.text());
    let event = stack.server.wait_decision_for_path("/reports/new");
    assert_eq!(event["policies"], "writes-need-mfa");
    let with_mfa = stack.token(json!({}));
    let response = stack.send(stack.bearer(HttpRequest::new("POST", "/reports/mfa"), &with_mfa));
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn expired_token_gets_401_from_jwt_authn_and_never_reaches_the_server() {
    let stack = Stack::start();
    let expired = stack.token(json!({"exp": now() - 3600, "iat": now() - 7200}));
    let response = stack.send(stack.bearer(HttpRequest::get("/reports/expired"), &expired));
    assert_eq!(response.status, 401, "{}", response.text());
    assert!(stack.forwarded("/reports/expired").is_empty());
    // A later request's decision is logged; none was for the expired one.
    let fresh = stack.bearer(HttpRequest::get("/reports/after"), &stack.token(json!({})));
    assert_eq!(stack.send(fresh).status, 200);
    stack.server.wait_decision_for_path("/reports/after");
    let logged = stack.server.decisions();
    assert!(logged.iter().all(|e| e["http.path"] != "/reports/expired"));
}

#[test]
fn token_from_another_key_gets_401_from_jwt_authn() {
    let stack = Stack::start();
    let forged = TestKey::generate("e2e").sign(&json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now() + 600,
        "scope": "reports:read",
    }));
    let response = stack.send(stack.bearer(HttpRequest::get("/reports/forged"), &forged));
    assert_eq!(response.status, 401, "{}", response.text());
    assert!(stack.forwarded("/reports/forged").is_empty());
}

#[test]
fn request_without_a_token_is_anonymous_and_denied_401_by_the_server() {
    let stack = Stack::start();
    let response = stack.send(HttpRequest::get("/reports/anon"));
    assert_eq!(response.status, 401, "{}", response.text());
    let event = stack.server.wait_decision_for_path("/reports/anon");
    assert_eq!(event["principal.type"], "Anonymous");
    assert_eq!(event["identity.source"], "none");
}
