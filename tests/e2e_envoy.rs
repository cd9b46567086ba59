#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Real HTTP requests through a real Envoy, started from
//! deploy/envoy/envoy.yaml itself, to the real server with the bundled
//! config and policies. Each test names the fault it guards against and
//! asserts what the client sees, what the upstream received, and the
//! server's decision event.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use support::echo::header_values;
use support::envoy::{CEDAR_PORT, UPSTREAM_PORT};
use support::*;

/// Upstream, server and Envoy for one test.
struct Stack {
    pki: TestPki,
    gateway: ClientIdentity,
    untrusted: ClientIdentity,
    upstream: Upstream,
    server: Server,
    envoy: Envoy,
    barriers: AtomicUsize,
}

impl Stack {
    fn start() -> Self {
        Self::start_with("")
    }

    /// As [`Stack::start`], with the bundled config patched (YAML).
    fn start_with(patch: &str) -> Self {
        let pki = TestPki::generate();
        let upstream = Upstream::start();
        let server = Server::bundled_with(patch);
        let envoy = Envoy::builder("envoy.yaml")
            .port(CEDAR_PORT, server.grpc_port())
            .port(UPSTREAM_PORT, upstream.port())
            .certs(pki.dir())
            .start();
        envoy.warm_up(&HttpRequest::get("/public/warm-up"), 200);
        let stack = Self {
            gateway: pki.client(GATEWAY_SPIFFE_ID),
            untrusted: pki.client(UNTRUSTED_SPIFFE_ID),
            pki,
            upstream,
            server,
            envoy,
            barriers: AtomicUsize::new(0),
        };
        // The decision log is written asynchronously: a barrier request
        // settles it (the warm-up's events included), so tests that count
        // decisions start from a settled log.
        stack.barrier();
        stack
    }

    /// Sends on the plain listener: no certificate, an anonymous client.
    fn anonymous(&self, request: HttpRequest) -> HttpResponse {
        request.send(self.envoy.http_port())
    }

    /// Sends on the mTLS listener with a certificate for `peer`.
    fn as_peer(&self, peer: &ClientIdentity, request: HttpRequest) -> HttpResponse {
        request.send_tls(self.envoy.https_port(), self.pki.ca_der(), peer)
    }

    /// Sends through the trusted gateway with Authelia's headers for
    /// `user` in `groups`.
    fn as_user(&self, user: &str, groups: &str, request: HttpRequest) -> HttpResponse {
        let request = request
            .header("remote-user", user)
            .header("remote-groups", groups);
        self.as_peer(&self.gateway, request)
    }

    /// The one request the upstream received for `path`.
    fn forwarded(&self, path: &str) -> Value {
        let seen: Vec<Value> = self
            .upstream
            .requests()
            .into_iter()
            .filter(|r| r["path"] == path)
            .collect();
        assert_eq!(seen.len(), 1, "upstream requests for {path}: {seen:#?}");
        seen.into_iter().next().unwrap()
    }

    /// Sends an allowed request and waits for its decision, so that every
    /// decision of the requests sent before it is in the log too.
    fn barrier(&self) {
        let n = self.barriers.fetch_add(1, Ordering::SeqCst);
        let path = format!("/public/barrier-{n}");
        assert_eq!(self.anonymous(HttpRequest::get(&path)).status, 200);
        self.server.wait_decision_for_path(&path);
    }

    /// Runs `send` and asserts that the upstream received nothing.
    fn not_forwarded(&self, send: impl FnOnce() -> HttpResponse) -> HttpResponse {
        let before = self.upstream.requests().len();
        let response = send();
        let after = self.upstream.requests();
        assert_eq!(
            after.len(),
            before,
            "a denied request reached the upstream: {:#?}",
            &after[before..]
        );
        response
    }
}

/// Asserts a deny decided by the server: the status, and the JSON body
/// `{"status": .., "error": ..}`.
fn assert_denied(response: &HttpResponse, status: u16) {
    assert_eq!(response.status, status, "body: {}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{response:?}"
    );
    let body = response.json();
    assert_eq!(body["status"], status, "{body}");
    assert!(body["error"].is_string(), "{body}");
}

fn text(event: &Value, field: &str) -> String {
    event[field].as_str().unwrap_or_default().to_owned()
}

#[test]
fn forged_auth_headers_from_anonymous_client_never_reach_upstream() {
    let s = Stack::start();
    let response = s.anonymous(
        HttpRequest::get("/public/x")
            .header("x-auth-user", "mallory")
            .header("x-auth-user", "root")
            .header("x-auth-groups", "admins")
            .header("x-auth-principal-type", "User"),
    );
    assert_eq!(response.status, 200, "{}", response.text());

    let seen = s.forwarded("/public/x");
    assert_eq!(header_values(&seen, "x-auth-principal-type"), ["Anonymous"]);
    assert!(header_values(&seen, "x-auth-user").is_empty(), "{seen:#}");
    assert!(header_values(&seen, "x-auth-groups").is_empty(), "{seen:#}");

    let decision = s.server.wait_decision_for_path("/public/x");
    assert_eq!(decision["decision"], "allow");
    assert_eq!(decision["principal.type"], "Anonymous");
    assert_eq!(decision["policies"], "public-read");
    assert_eq!(decision["identity.source"], "none");
}

#[test]
fn anonymous_read_of_protected_path_is_401() {
    let s = Stack::start();
    let response = s.not_forwarded(|| s.anonymous(HttpRequest::get("/app")));
    assert_denied(&response, 401);

    let decision = s.server.wait_decision_for_path("/app");
    assert_eq!(decision["decision"], "deny");
    assert_eq!(decision["http.status"], 401);
    assert_eq!(decision["principal.type"], "Anonymous");
}

#[test]
fn anonymous_write_is_401_with_json_body() {
    let s = Stack::start();
    let response = s.not_forwarded(|| {
        s.anonymous(
            HttpRequest::new("POST", "/app/x")
                .header("content-type", "application/json")
                .body(r#"{"title":"x"}"#),
        )
    });
    assert_denied(&response, 401);
    assert_eq!(
        response.json(),
        serde_json::json!({"status": 401, "error": "sign in to make changes"})
    );

    let decision = s.server.wait_decision_for_path("/app/x");
    assert_eq!(decision["http.method"], "POST");
    assert!(
        text(&decision, "policies")
            .split(',')
            .any(|p| p == "anonymous-cannot-write"),
        "{decision}"
    );
}

#[test]
fn forged_auth_user_is_overwritten_by_trusted_forwarder_identity() {
    let s = Stack::start();
    let response = s.as_user(
        "alice",
        "staff",
        HttpRequest::get("/app/x")
            .header("x-auth-user", "mallory")
            .header("x-auth-user", "mallory")
            .header("x-auth-groups", "admins")
            .header("x-auth-principal-type", "Workload"),
    );
    assert_eq!(response.status, 200, "{}", response.text());

    let seen = s.forwarded("/app/x");
    assert_eq!(header_values(&seen, "x-auth-user"), ["alice"]);
    assert_eq!(header_values(&seen, "x-auth-groups"), ["staff"]);
    assert_eq!(header_values(&seen, "x-auth-principal-type"), ["User"]);

    let decision = s.server.wait_decision_for_path("/app/x");
    assert_eq!(decision["decision"], "allow");
    assert_eq!(decision["principal.type"], "User");
    assert_eq!(decision["principal.id"], "alice");
    assert_eq!(decision["identity.trusted"], true);
    assert_eq!(decision["identity.source"], "authelia");
    assert_eq!(decision["source.principal"], GATEWAY_SPIFFE_ID);
    assert_eq!(decision["policies"], "staff-read-app");
}

#[test]
fn trusted_user_outside_admins_is_403_on_admin_area() {
    let s = Stack::start();
    for path in ["/admin", "/admin/users"] {
        let response = s.not_forwarded(|| s.as_user("alice", "staff", HttpRequest::get(path)));
        assert_denied(&response, 403);
        let decision = s.server.wait_decision_for_path(path);
        assert_eq!(decision["principal.id"], "alice");
        assert!(
            text(&decision, "policies").contains("admin-area-admins-only"),
            "{decision}"
        );
    }
    // Control: the same path is reachable for an admin, so the 403 above
    // is the policy and not the route.
    let response = s.as_user("root", "admins", HttpRequest::get("/admin/users"));
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn spoofed_identity_header_from_untrusted_peer_is_ignored() {
    let s = Stack::start();
    let spoof = |request: HttpRequest| {
        request
            .header("remote-user", "alice")
            .header("remote-groups", "admins")
    };

    // Allowed path: decided for the workload, spoofed headers removed.
    let response = s.as_peer(&s.untrusted, spoof(HttpRequest::get("/public/x")));
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = s.forwarded("/public/x");
    assert!(header_values(&seen, "remote-user").is_empty(), "{seen:#}");
    assert!(header_values(&seen, "remote-groups").is_empty(), "{seen:#}");
    assert_eq!(header_values(&seen, "x-auth-principal-type"), ["Workload"]);
    assert_eq!(header_values(&seen, "x-auth-user"), [UNTRUSTED_SPIFFE_ID]);

    let decision = s.server.wait_decision_for_path("/public/x");
    assert_eq!(decision["identity.trusted"], false);
    let ignored = text(&decision, "identity.ignored_headers");
    let ignored: Vec<&str> = ignored.split(',').collect();
    assert!(ignored.contains(&"remote-user"), "{decision}");
    assert!(ignored.contains(&"remote-groups"), "{decision}");
    assert_eq!(decision["principal.type"], "Workload");
    assert_eq!(decision["principal.id"], UNTRUSTED_SPIFFE_ID);

    // The claimed admin group opens nothing.
    for path in ["/admin", "/app/x"] {
        let response = s.not_forwarded(|| s.as_peer(&s.untrusted, spoof(HttpRequest::get(path))));
        assert_denied(&response, 403);
        let decision = s.server.wait_decision_for_path(path);
        assert_eq!(decision["principal.type"], "Workload", "{decision}");
    }
}

#[test]
fn underscore_spelling_of_identity_header_is_rejected_by_envoy() {
    let s = Stack::start();
    let decisions = s.server.decisions().len();
    // Not an identity header to the server, but REMOTE_USER to many
    // application stacks: Envoy refuses the request outright.
    for name in ["remote_user", "x_auth_user", "x-authentik_username"] {
        let request = HttpRequest::get("/public/x").header(name, "root");
        let response = s.not_forwarded(|| s.anonymous(request.clone()));
        assert_eq!(response.status, 400, "{name}: {}", response.text());
        let response = s.not_forwarded(|| s.as_peer(&s.untrusted, request));
        assert_eq!(response.status, 400, "{name}: {}", response.text());
    }
    s.barrier();
    assert_eq!(
        s.server.decisions().len(),
        decisions + 1,
        "only the barrier"
    );
}

#[test]
fn trusted_forwarder_without_user_is_anonymous_not_the_gateway() {
    let s = Stack::start();
    let response = s.not_forwarded(|| s.as_peer(&s.gateway, HttpRequest::get("/app/x")));
    assert_denied(&response, 401);
    let decision = s.server.wait_decision_for_path("/app/x");
    assert_eq!(decision["principal.type"], "Anonymous");
    assert_eq!(decision["source.principal"], GATEWAY_SPIFFE_ID);
}

#[test]
fn client_certificate_from_unknown_ca_is_refused_by_envoy() {
    let s = Stack::start();
    // A certificate that names the gateway but is signed by another CA.
    let other = TestPki::generate();
    let forged = other.client(GATEWAY_SPIFFE_ID);
    let request = HttpRequest::get("/admin")
        .header("remote-user", "root")
        .header("remote-groups", "admins");
    let before = s.upstream.requests().len();
    let decisions = s.server.decisions().len();
    for client in [Some(&forged), None] {
        let result = request.try_send_tls(s.envoy.https_port(), s.pki.ca_der(), client);
        assert!(
            result.is_err(),
            "handshake with {} accepted: {result:?}",
            client.map_or("no certificate", |_| "a foreign certificate")
        );
    }
    s.barrier();
    assert_eq!(s.upstream.requests().len(), before + 1, "only the barrier");
    assert_eq!(
        s.server.decisions().len(),
        decisions + 1,
        "only the barrier"
    );
}

/// How a request that tries to reach /admin must end, for an anonymous
/// client and for alice (staff, not admins) through the gateway.
struct PathCase {
    target: &'static str,
    anonymous: u16,
    alice: u16,
}

/// Sends each case both ways and asserts the status and that the upstream
/// never received it.
fn assert_path_cases(s: &Stack, cases: &[PathCase]) {
    for case in cases {
        let response = s.not_forwarded(|| s.anonymous(HttpRequest::get(case.target)));
        assert_eq!(
            response.status,
            case.anonymous,
            "anonymous {}: {}",
            case.target,
            response.text()
        );
        assert_denied(&response, case.anonymous);
        let response =
            s.not_forwarded(|| s.as_user("alice", "staff", HttpRequest::get(case.target)));
        assert_eq!(
            response.status,
            case.alice,
            "alice {}: {}",
            case.target,
            response.text()
        );
        assert_denied(&response, case.alice);
    }
}

#[test]
fn path_parameter_dot_segment_never_reaches_admin() {
    let s = Stack::start();
    assert_path_cases(
        &s,
        &[
            // Envoy's normalize_path resolves `..;` as `..`: decided as
            // /admin.
            PathCase {
                target: "/public/..;/admin",
                anonymous: 401,
                alice: 403,
            },
            // Left encoded by Envoy: the server refuses `..;` with 400.
            PathCase {
                target: "/public/%2e%2e;/admin",
                anonymous: 400,
                alice: 400,
            },
            PathCase {
                target: "/app/%2e%2e;/public/x",
                anonymous: 400,
                alice: 400,
            },
            PathCase {
                target: "/public;/../admin",
                anonymous: 401,
                alice: 403,
            },
        ],
    );
    s.barrier();
    // What the server itself refused is on record as a refusal.
    let refusals: Vec<Value> = s
        .server
        .decisions()
        .into_iter()
        .filter(|d| d["http.status"] == 400)
        .collect();
    assert_eq!(refusals.len(), 4, "{refusals:#?}");
    for refusal in &refusals {
        assert_eq!(refusal["deny.kind"], "refused", "{refusal}");
        assert!(text(refusal, "refusal").contains("..;"), "{refusal}");
    }
}

#[test]
fn encoded_slash_never_reaches_admin() {
    let s = Stack::start();
    assert_path_cases(
        &s,
        &[
            PathCase {
                target: "/public/%2Fadmin",
                anonymous: 400,
                alice: 400,
            },
            PathCase {
                target: "/public/%2fadmin",
                anonymous: 400,
                alice: 400,
            },
            PathCase {
                target: "/public%2F..%2Fadmin",
                anonymous: 400,
                alice: 400,
            },
            PathCase {
                target: "/public/..%5cadmin",
                anonymous: 400,
                alice: 400,
            },
        ],
    );
}

#[test]
fn dot_segments_and_merged_slashes_resolve_to_admin_before_deciding() {
    let s = Stack::start();
    let to_admin = |target| PathCase {
        target,
        anonymous: 401,
        alice: 403,
    };
    assert_path_cases(
        &s,
        &[
            to_admin("/public/../admin"),
            to_admin("/public/%2e%2e/admin"),
            to_admin("/public/.%2e/admin"),
            to_admin("/public/x/../../admin"),
            to_admin("/./admin"),
            to_admin("//admin"),
        ],
    );
    s.barrier();
    for decision in s.server.decisions() {
        if decision["decision"] == "deny" {
            assert_eq!(decision["http.path"], "/admin", "{decision}");
        }
    }
}

#[test]
fn query_string_does_not_change_the_resource() {
    let s = Stack::start();
    assert_path_cases(
        &s,
        &[
            PathCase {
                target: "/admin?x=1",
                anonymous: 401,
                alice: 403,
            },
            PathCase {
                target: "/admin?/public/x",
                anonymous: 401,
                alice: 403,
            },
        ],
    );
    let decision = s.server.wait_decision("raw path /admin?x=1", |d| {
        d["http.raw_path"] == "/admin?x=1"
    });
    assert_eq!(decision["http.path"], "/admin");
}

#[test]
fn percent_encoded_letters_are_decoded_before_deciding() {
    let s = Stack::start();
    assert_path_cases(
        &s,
        &[
            PathCase {
                target: "/%61dmin",
                anonymous: 401,
                alice: 403,
            },
            PathCase {
                target: "/%61%64%6d%69%6e/users",
                anonymous: 401,
                alice: 403,
            },
        ],
    );
}

#[test]
fn lower_case_method_is_never_a_bypass() {
    let s = Stack::start();
    let decisions = s.server.decisions().len();
    // Envoy's HTTP/1 codec refuses a method that is not upper-case with
    // its own 400 before any filter runs.
    for (method, target) in [("get", "/admin"), ("delete", "/app/x"), ("Post", "/app/x")] {
        let response = s.not_forwarded(|| s.anonymous(HttpRequest::new(method, target)));
        assert_eq!(
            response.status,
            400,
            "{method} {target}: {}",
            response.text()
        );
        let response =
            s.not_forwarded(|| s.as_user("alice", "staff", HttpRequest::new(method, target)));
        assert_eq!(
            response.status,
            400,
            "{method} {target}: {}",
            response.text()
        );
    }
    s.barrier();
    assert_eq!(
        s.server.decisions().len(),
        decisions + 1,
        "only the barrier reached the server"
    );
}

#[test]
fn per_route_context_extensions_reach_the_server() {
    let s = Stack::start();
    // /beta carries `cedar_dry_run: "true"`: the deny is logged, not
    // enforced. Only the route's context extension can do that.
    let response = s.anonymous(HttpRequest::get("/beta/x"));
    assert_eq!(response.status, 200, "{}", response.text());
    let decision = s.server.wait_decision_for_path("/beta/x");
    assert_eq!(decision["decision"], "deny");
    assert_eq!(decision["dry_run"], true);
    assert_eq!(decision["http.status"], 401);

    // /billing carries only `app: billing`: enforced as usual.
    let response = s.not_forwarded(|| s.anonymous(HttpRequest::get("/billing/x")));
    assert_denied(&response, 401);
    let decision = s.server.wait_decision_for_path("/billing/x");
    assert_eq!(decision["dry_run"], false);
}

/// A copy of the bundled policies with one more policy, as a shadow set.
fn shadow_set_with(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_root().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dir.path().join("shadow.cedar"), extra).unwrap();
    dir
}

#[test]
fn shadow_set_disagreement_is_logged_never_enforced() {
    // The candidate set forbids every DELETE; the enforced set lets an
    // admin delete. Live traffic shows the difference before a rollout.
    let shadow = shadow_set_with(
        "@id(\"candidate-no-deletes\")\nforbid(principal, action == Action::\"DELETE\", resource);\n",
    );
    let patch = format!("shadow_policy_dir: {}", shadow.path().display());
    let s = Stack::start_with(&patch);
    let request = || HttpRequest::new("DELETE", "/app/notes/1");
    let response = s.as_user("ada", "admins,staff", request());
    assert_eq!(
        response.status,
        200,
        "enforced set decides: {}",
        response.text()
    );
    let decision = s.server.wait_decision_for_path("/app/notes/1");
    assert_eq!(decision["decision"], "allow");
    let disagreement = s.server.wait_for_event("shadow disagreement");
    assert_eq!(disagreement["shadow.decision"], "deny");
    assert_eq!(disagreement["shadow.policies"], "candidate-no-deletes");

    // Where both sets agree (a public read), nothing is reported.
    assert_eq!(s.anonymous(HttpRequest::get("/public/agreed")).status, 200);
    s.barrier();
    let reports = s
        .server
        .events()
        .into_iter()
        .filter(|e| e["message"] == "shadow disagreement")
        .count();
    assert_eq!(reports, 1, "{}", s.server.dump());
}

#[test]
fn authorization_server_outage_fails_closed_with_503() {
    let pki = TestPki::generate();
    let upstream = Upstream::start();
    let server = Server::bundled();
    let envoy = Envoy::builder("envoy.yaml")
        .port(CEDAR_PORT, server.grpc_port())
        .port(UPSTREAM_PORT, upstream.port())
        .certs(pki.dir())
        .start();
    envoy.warm_up(&HttpRequest::get("/public/warm-up"), 200);
    drop(server);

    let before = upstream.requests().len();
    let response = HttpRequest::get("/public/x").send(envoy.http_port());
    assert_eq!(response.status, 503, "{}", response.text());
    let gateway = pki.client(GATEWAY_SPIFFE_ID);
    let response = HttpRequest::get("/app/x")
        .header("remote-user", "root")
        .header("remote-groups", "admins")
        .send_tls(envoy.https_port(), pki.ca_der(), &gateway);
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(upstream.requests().len(), before, "nothing was let through");
}
