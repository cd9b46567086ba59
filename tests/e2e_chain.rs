#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! The forward-auth chain of deploy/envoy/envoy-chain.yaml, run as is:
//! Envoy strips client-sent identity headers, asks an Authelia stand-in who
//! the session belongs to, then asks the real server (bundled policies,
//! `headers_stripped_by_proxy: true`) for the decision.

mod support;

use serde_json::Value;
use support::echo::{header_values, AUTHELIA_PATH_PREFIX};
use support::envoy::{AUTHELIA_PORT, CEDAR_PORT, UPSTREAM_PORT};
use support::*;

/// Every identity header a client might forge, with a forged value.
const FORGED: &[(&str, &str)] = &[
    ("remote-user", "admin"),
    ("remote-groups", "admins"),
    ("remote-email", "admin@example.com"),
    ("remote-name", "Admin"),
    ("x-authentik-username", "admin"),
    ("x-authentik-groups", "admins|data-export"),
];

struct Chain {
    upstream: Upstream,
    authelia: AutheliaStandIn,
    server: Server,
    envoy: Envoy,
}

impl Chain {
    fn start() -> Self {
        let upstream = Upstream::start();
        let authelia = AutheliaStandIn::start(&[("alice", &["staff"]), ("bob", &["editors"])]);
        let server = Server::bundled_with("identity: {headers_stripped_by_proxy: true}");
        let envoy = Envoy::builder("envoy-chain.yaml")
            .port(CEDAR_PORT, server.grpc_port())
            .port(UPSTREAM_PORT, upstream.port())
            .port(AUTHELIA_PORT, authelia.port())
            .start();
        envoy.warm_up(&HttpRequest::get("/public/warm-up"), 200);
        Self {
            upstream,
            authelia,
            server,
            envoy,
        }
    }

    fn send(&self, request: HttpRequest) -> HttpResponse {
        request.send(self.envoy.http_port())
    }

    /// The one request the upstream received for `path`.
    fn forwarded(&self, path: &str) -> Value {
        let seen: Vec<Value> = self.upstream.requests_to(path);
        assert_eq!(seen.len(), 1, "upstream requests for {path}: {seen:#?}");
        seen.into_iter().next().unwrap()
    }

    /// Waits until every decision of earlier requests is in the log.
    fn barrier(&self, path: &str) {
        assert_eq!(self.send(HttpRequest::get(path)).status, 200);
        self.server.wait_decision_for_path(path);
    }
}

fn forge(mut request: HttpRequest) -> HttpRequest {
    for (name, value) in FORGED {
        request = request.header(name, value);
    }
    request
}

#[test]
fn session_user_is_decided_and_forwarded() {
    let c = Chain::start();
    let response = c.send(HttpRequest::get("/app/x").header("cookie", "session=alice"));
    assert_eq!(response.status, 200, "{}", response.text());

    let seen = c.forwarded("/app/x");
    assert_eq!(header_values(&seen, "x-auth-user"), ["alice"]);
    assert_eq!(header_values(&seen, "x-auth-groups"), ["staff"]);
    assert_eq!(header_values(&seen, "remote-user"), ["alice"]);

    let decision = c.server.wait_decision_for_path("/app/x");
    assert_eq!(decision["principal.type"], "User");
    assert_eq!(decision["principal.id"], "alice");
    assert_eq!(decision["identity.source"], "authelia");
    assert_eq!(decision["identity.trusted"], true);
    assert_eq!(decision["policies"], "staff-read-app");

    // Authelia was asked on its forward-auth endpoint with the cookie.
    let asked = c.authelia.requests();
    let asked = asked
        .iter()
        .find(|r| r["path"] == format!("{AUTHELIA_PATH_PREFIX}/app/x"))
        .unwrap_or_else(|| panic!("Authelia was not asked: {asked:#?}"));
    assert_eq!(header_values(asked, "cookie"), ["session=alice"]);
}

#[test]
fn forged_identity_without_session_is_stopped_at_authelia() {
    let c = Chain::start();
    let before = c.upstream.requests().len();
    for path in ["/admin", "/app/x"] {
        let response = c.send(forge(HttpRequest::get(path)));
        assert_eq!(response.status, 401, "{path}: {}", response.text());
        assert_eq!(response.text(), "401 Unauthorized", "Authelia's own answer");
    }
    assert_eq!(
        c.upstream.requests().len(),
        before,
        "nothing reached upstream"
    );

    c.barrier("/public/barrier");
    let decided: Vec<Value> = c
        .server
        .decisions()
        .into_iter()
        .filter(|d| d["http.path"] == "/admin" || d["http.path"] == "/app/x")
        .collect();
    assert!(decided.is_empty(), "reached the server: {decided:#?}");
    // The forged headers never reached Authelia either.
    for asked in c.authelia.requests() {
        for (name, _) in FORGED {
            assert!(header_values(&asked, name).is_empty(), "{asked:#}");
        }
    }
}

#[test]
fn forged_identity_on_bypassed_path_is_decided_as_anonymous() {
    let c = Chain::start();
    let response = c.send(forge(HttpRequest::get("/public/x")));
    assert_eq!(response.status, 200, "{}", response.text());

    let decision = c.server.wait_decision_for_path("/public/x");
    assert_eq!(decision["principal.type"], "Anonymous", "{decision}");
    assert_eq!(
        decision["identity.ignored_headers"], "",
        "nothing to ignore"
    );

    let seen = c.forwarded("/public/x");
    for (name, _) in FORGED {
        assert!(header_values(&seen, name).is_empty(), "{name}: {seen:#}");
    }
    assert_eq!(header_values(&seen, "x-auth-principal-type"), ["Anonymous"]);
    assert!(header_values(&seen, "x-auth-user").is_empty(), "{seen:#}");

    // A forged admin cannot write either.
    let response = c.send(forge(HttpRequest::new("POST", "/public/x").body("{}")));
    assert_eq!(response.status, 401, "{}", response.text());

    c.barrier("/public/barrier");
    for decision in c.server.decisions() {
        assert_ne!(decision["principal.id"], "admin", "{decision}");
        assert!(
            !decision["principal.groups"]
                .as_str()
                .unwrap_or_default()
                .contains("admins"),
            "{decision}"
        );
    }
}

#[test]
fn forged_identity_with_valid_session_is_replaced_by_session_user() {
    let c = Chain::start();
    let forged_alice = |path: &str| {
        HttpRequest::get(path)
            .header("cookie", "session=bob")
            .header("remote-user", "alice")
            .header("remote-groups", "admins")
            .header("x-authentik-username", "alice")
    };
    let response = c.send(forged_alice("/app/x"));
    assert_eq!(response.status, 200, "{}", response.text());
    let decision = c.server.wait_decision_for_path("/app/x");
    assert_eq!(decision["principal.id"], "bob", "{decision}");
    assert_eq!(decision["principal.groups"], "editors", "{decision}");
    let seen = c.forwarded("/app/x");
    assert_eq!(header_values(&seen, "remote-user"), ["bob"]);
    assert_eq!(header_values(&seen, "remote-groups"), ["editors"]);
    assert_eq!(header_values(&seen, "x-auth-user"), ["bob"]);
    assert!(header_values(&seen, "x-authentik-username").is_empty());

    // Bob is not an admin whatever the client claims.
    let before = c.upstream.requests().len();
    let response = c.send(forged_alice("/admin"));
    assert_eq!(response.status, 403, "{}", response.text());
    assert_eq!(c.upstream.requests().len(), before);
    let decision = c.server.wait_decision_for_path("/admin");
    assert_eq!(decision["principal.id"], "bob", "{decision}");
}

#[test]
fn authelia_outage_fails_closed_with_503() {
    let Chain {
        upstream,
        authelia,
        server,
        envoy,
    } = Chain::start();
    drop(authelia);
    let before = upstream.requests().len();
    for request in [
        HttpRequest::get("/public/x"),
        HttpRequest::get("/app/x").header("cookie", "session=alice"),
    ] {
        let response = request.send(envoy.http_port());
        assert_eq!(response.status, 503, "{}", response.text());
    }
    assert_eq!(upstream.requests().len(), before, "nothing was let through");
    drop(server);
}
