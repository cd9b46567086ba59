#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Real HTTP requests through a real Envoy (deploy/envoy/envoy.yaml, the
//! file itself) to the real server with the bundled config and policies.

mod support;

use support::echo::header_values;
use support::envoy::{CEDAR_PORT, UPSTREAM_PORT};
use support::*;

struct Stack {
    pki: TestPki,
    upstream: Upstream,
    server: Server,
    envoy: Envoy,
}

impl Stack {
    fn start() -> Self {
        let pki = TestPki::generate();
        let upstream = Upstream::start();
        let server = Server::bundled();
        let envoy = Envoy::builder("envoy.yaml")
            .port(CEDAR_PORT, server.grpc_port())
            .port(UPSTREAM_PORT, upstream.port())
            .certs(pki.dir())
            .start();
        envoy.warm_up(&HttpRequest::get("/public/warm-up"), 200);
        Self {
            pki,
            upstream,
            server,
            envoy,
        }
    }
}

#[test]
fn explore() {
    let s = Stack::start();
    let gw = s.pki.client(GATEWAY_SPIFFE_ID);
    for target in [
        "/public/..;/admin",
        "/app/%2e%2e;/public/x",
        "/public/%2Fadmin",
        "/admin?x=1",
        "/%61dmin",
        "/public/../admin",
        "//admin",
        "/public/%2e%2e/admin",
    ] {
        let r = HttpRequest::get(target)
            .header("remote-user", "alice")
            .header("remote-groups", "staff")
            .send_tls(s.envoy.https_port(), s.pki.ca_der(), &gw);
        println!("{target} -> {} {}", r.status, r.text());
    }
    for m in ["get", "delete", "Get"] {
        let r = HttpRequest::new(m, "/admin").send(s.envoy.http_port());
        println!("{m} /admin -> {} {}", r.status, r.text());
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    for d in s.server.decisions() {
        println!(
            "{} {} {} {} {}",
            d["http.raw_path"], d["http.path"], d["http.method"], d["http.status"], d["refusal"]
        );
    }
    println!("{:#?}", s.upstream.requests().len());
    let _ = header_values;
}
