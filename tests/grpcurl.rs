#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! The real grpcurl binary against the real server, through reflection
//! only (no .proto files): what an operator can do by hand. Check requests
//! are sent here directly, without Envoy's path normalisation, so these
//! tests also prove what the server itself does with path tricks.

mod support;

use serde_json::{json, Value};
use support::*;

/// A CheckRequest as Envoy's HTTP filter sends it, in protobuf JSON.
struct Check {
    method: &'static str,
    path: &'static str,
    principal: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    context_extensions: Vec<(&'static str, &'static str)>,
}

impl Check {
    fn new(method: &'static str, path: &'static str) -> Self {
        Self {
            method,
            path,
            principal: "",
            headers: Vec::new(),
            context_extensions: Vec::new(),
        }
    }

    /// Through the trusted gateway, as `user` in `groups`.
    fn by_user(mut self, user: &'static str, groups: &'static str) -> Self {
        self.principal = GATEWAY_SPIFFE_ID;
        self.headers.push(("remote-user", user));
        self.headers.push(("remote-groups", groups));
        self
    }

    fn json(&self) -> String {
        let mut headers = serde_json::Map::new();
        for (k, v) in [
            (":authority", "app.example.com"),
            (":method", self.method),
            (":path", self.path),
            (":scheme", "https"),
            ("x-request-id", "grpcurl-test"),
        ]
        .into_iter()
        .chain(self.headers.iter().copied())
        {
            headers.insert(k.to_owned(), v.into());
        }
        let extensions: serde_json::Map<String, Value> = self
            .context_extensions
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        json!({
            "attributes": {
                "source": {
                    "address": {"socketAddress": {"address": "127.0.0.1", "portValue": 40000}},
                    "principal": self.principal,
                },
                "destination": {
                    "address": {"socketAddress": {"address": "127.0.0.1", "portValue": 10443}},
                },
                "request": {
                    "http": {
                        "id": "1",
                        "method": self.method,
                        "path": self.path,
                        "host": "app.example.com",
                        "scheme": "https",
                        "protocol": "HTTP/1.1",
                        "headers": headers,
                    },
                },
                "contextExtensions": extensions,
            },
        })
        .to_string()
    }
}

/// Calls `method` (`package.Service/Method`) with `request` as JSON.
fn call(server: &Server, method: &str, request: &str) -> Value {
    let addr = server.grpc_addr().to_string();
    let output = grpcurl(
        &["-plaintext", "-emit-defaults", "-d", "@", &addr, method],
        request,
    );
    output.assert_success(&format!("grpcurl {method}"));
    serde_json::from_str(&output.stdout)
        .unwrap_or_else(|e| panic!("grpcurl output is not JSON ({e}):\n{}", output.stdout))
}

fn check(server: &Server, request: &Check) -> Value {
    call(
        server,
        "envoy.service.auth.v3.Authorization/Check",
        &request.json(),
    )
}

/// The HTTP status of a denied CheckResponse (grpcurl prints the
/// `envoy.type.v3.StatusCode` enum by name).
fn denied_status(response: &Value) -> u16 {
    match &response["deniedResponse"]["status"]["code"] {
        Value::String(name) => match name.as_str() {
            "BadRequest" => 400,
            "Unauthorized" => 401,
            "Forbidden" => 403,
            "NotFound" => 404,
            "PayloadTooLarge" => 413,
            "URITooLong" => 414,
            "RequestHeaderFieldsTooLarge" => 431,
            other => panic!("unexpected status name {other}"),
        },
        Value::Number(n) => u16::try_from(n.as_u64().unwrap()).unwrap(),
        other => panic!("no denied status in {response}: {other}"),
    }
}

#[test]
fn reflection_lists_every_service() {
    let server = Server::bundled();
    let addr = server.grpc_addr().to_string();
    let output = grpcurl(&["-plaintext", &addr, "list"], "");
    output.assert_success("grpcurl list");
    let services: Vec<&str> = output.stdout.lines().map(str::trim).collect();
    for service in [
        "envoy.service.auth.v3.Authorization",
        "cedar_ext_authz.v1.Explainer",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.contains(&service),
            "{service} missing: {services:?}"
        );
    }
}

#[test]
fn reflection_describes_the_authorization_service() {
    let server = Server::bundled();
    let addr = server.grpc_addr().to_string();
    let output = grpcurl(
        &[
            "-plaintext",
            &addr,
            "describe",
            "envoy.service.auth.v3.Authorization",
        ],
        "",
    );
    output.assert_success("grpcurl describe");
    assert!(output.stdout.contains("is a service"), "{}", output.stdout);
    assert!(
        output.stdout.contains(
            "rpc Check ( .envoy.service.auth.v3.CheckRequest ) returns ( .envoy.service.auth.v3.CheckResponse )"
        ),
        "{}",
        output.stdout
    );
    // The request type resolves too: every file the service needs is served.
    let output = grpcurl(
        &[
            "-plaintext",
            &addr,
            "describe",
            "envoy.service.auth.v3.AttributeContext.HttpRequest",
        ],
        "",
    );
    output.assert_success("grpcurl describe HttpRequest");
    assert!(output.stdout.contains("header_map"), "{}", output.stdout);
}

#[test]
fn check_allows_public_read_with_ok_status() {
    let server = Server::bundled();
    let response = check(&server, &Check::new("GET", "/public/x"));
    assert_eq!(response["status"]["code"], 0, "{response:#}");
    let ok = &response["okResponse"];
    assert!(ok.is_object(), "{response:#}");
    let headers: Vec<(String, String)> = ok["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["header"]["key"].as_str().unwrap().to_owned(),
                h["header"]["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        headers.contains(&("x-auth-principal-type".into(), "Anonymous".into())),
        "{response:#}"
    );
    let decision = server.wait_decision_for_path("/public/x");
    assert_eq!(decision["decision"], "allow");
    assert_eq!(decision["request.id"], "grpcurl-test");
}

#[test]
fn check_denies_admin_area_to_staff_with_code_7_and_403() {
    let server = Server::bundled();
    let response = check(
        &server,
        &Check::new("GET", "/admin").by_user("alice", "staff"),
    );
    assert_eq!(response["status"]["code"], 7, "{response:#}");
    assert_eq!(denied_status(&response), 403, "{response:#}");
    let body: Value = serde_json::from_str(response["deniedResponse"]["body"].as_str().unwrap())
        .expect("JSON body");
    assert_eq!(body["status"], 403);
}

#[test]
fn check_denies_anonymous_write_with_code_16_and_401() {
    let server = Server::bundled();
    let response = check(&server, &Check::new("POST", "/app/x"));
    assert_eq!(response["status"]["code"], 16, "{response:#}");
    assert_eq!(denied_status(&response), 401, "{response:#}");
}

#[test]
fn explain_names_the_determining_policy_and_mapped_principal() {
    let server = Server::bundled();
    let mut request = Check::new("GET", "/app/x").by_user("alice", "staff");
    request.context_extensions.push(("app", "billing"));
    let explained = call(
        &server,
        "cedar_ext_authz.v1.Explainer/Explain",
        &request.json(),
    );
    assert_eq!(explained["decision"], "allow", "{explained:#}");
    assert_eq!(explained["httpStatus"], 200);
    assert_eq!(explained["determiningPolicies"], json!(["staff-read-app"]));
    let principal: Value = serde_json::from_str(explained["principal"].as_str().unwrap()).unwrap();
    assert_eq!(principal, json!({"type": "User", "id": "alice"}));
    let action: Value = serde_json::from_str(explained["action"].as_str().unwrap()).unwrap();
    assert_eq!(action, json!({"type": "Action", "id": "GET"}));
    assert_eq!(explained["identitySource"], "authelia");
    assert_eq!(explained["identityTrusted"], true);
    // The per-route context extension is in the Cedar context.
    let context: Value = serde_json::from_str(explained["contextJson"].as_str().unwrap()).unwrap();
    assert_eq!(context["ext"]["app"], "billing", "{context:#}");

    let denied = call(
        &server,
        "cedar_ext_authz.v1.Explainer/Explain",
        &Check::new("GET", "/admin").by_user("alice", "staff").json(),
    );
    assert_eq!(denied["decision"], "deny");
    assert_eq!(denied["httpStatus"], 403);
    assert_eq!(
        denied["determiningPolicies"],
        json!(["admin-area-admins-only"])
    );

    // Explain is not a served decision: nothing is logged for it.
    check(&server, &Check::new("GET", "/public/after-explain"));
    server.wait_decision_for_path("/public/after-explain");
    assert_eq!(server.decisions().len(), 1, "{:#?}", server.decisions());
}

#[test]
fn health_and_status_report_serving() {
    let server = Server::bundled();
    for service in ["", "envoy.service.auth.v3.Authorization"] {
        let health = call(
            &server,
            "grpc.health.v1.Health/Check",
            &json!({ "service": service }).to_string(),
        );
        assert_eq!(health["status"], "SERVING", "{service}: {health}");
    }
    let status = call(&server, "cedar_ext_authz.v1.Explainer/Status", "{}");
    assert!(status["policyCount"].as_u64().unwrap() > 0, "{status:#}");
    assert_eq!(status["lastError"], "");
}

/// Path tricks sent straight to the server (no Envoy to normalise them):
/// the server itself refuses the ambiguous ones and resolves the rest
/// before deciding. `(method, raw path, anonymous status, alice status)`.
#[test]
fn server_itself_refuses_or_resolves_path_tricks() {
    let server = Server::bundled();
    let cases: &[(&str, &str, u16, u16)] = &[
        ("GET", "/public/..;/admin", 400, 400),
        ("GET", "/public/%2e%2e;/admin", 400, 400),
        ("GET", "/app/%2e%2e;/public/x", 400, 400),
        ("GET", "/public/%2Fadmin", 400, 400),
        ("GET", "/public/%2fadmin", 400, 400),
        ("GET", "/public/../admin", 401, 403),
        ("GET", "/public/%2e%2e/admin", 401, 403),
        ("GET", "//admin", 401, 403),
        ("GET", "/admin?x=1", 401, 403),
        ("GET", "/%61dmin", 401, 403),
        // Lower-case methods (which Envoy would refuse) are upper-cased,
        // not new actions that no forbid names.
        ("get", "/admin", 401, 403),
        ("delete", "/app/x", 401, 403),
    ];
    for &(method, path, anonymous, alice) in cases {
        let response = check(&server, &Check::new(method, path));
        assert_ne!(response["status"]["code"], 0, "anonymous {method} {path}");
        assert_eq!(
            denied_status(&response),
            anonymous,
            "anonymous {method} {path}: {response:#}"
        );
        let response = check(&server, &Check::new(method, path).by_user("alice", "staff"));
        assert_ne!(response["status"]["code"], 0, "alice {method} {path}");
        assert_eq!(
            denied_status(&response),
            alice,
            "alice {method} {path}: {response:#}"
        );
    }
}
