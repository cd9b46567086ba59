//! Writes the committed seed corpus of the `check_request` target:
//! CheckRequests in protobuf JSON (as grpcurl takes them), encoded as the
//! bytes Envoy sends. Run from the repository root after changing a seed:
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example write_seeds
//!
//! The `canonicalize` seeds are plain text files and are edited by hand.

use std::path::Path;

use cedar_ext_authz::cli::parse_check_request;
use prost::Message;

const GATEWAY: &str =
    "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";

/// (file name, CheckRequest JSON with `GW` standing for the gateway).
const SEEDS: &[(&str, &str)] = &[
    (
        "admin-denied",
        r#"{"attributes": {"source": {"principal": "GW"}, "request": {"http": {"method": "GET", "host": "app.example.test", "path": "/admin/users", "headers": {"remote-user": "sam", "remote-groups": "staff"}}}}}"#,
    ),
    (
        "admin-allowed",
        r#"{"attributes": {"source": {"principal": "GW"}, "request": {"http": {"method": "GET", "host": "app.example.test", "path": "/admin/users", "headers": {"remote-user": "ada", "remote-groups": "admins,staff"}}}}}"#,
    ),
    (
        "anonymous-write",
        r#"{"attributes": {"request": {"http": {"method": "POST", "host": "app.example.test:8443", "path": "/api/x?b=2&a=1"}}}}"#,
    ),
    (
        "document-route",
        r#"{"attributes": {"source": {"principal": "GW", "address": {"socketAddress": {"address": "10.0.0.5", "portValue": 40123}}}, "request": {"http": {"method": "get", "host": "APP.example.test.", "path": "/api/documents/d-1", "headers": {"x-authentik-username": "zoë", "x-authentik-groups": "eng|ops"}}}}}"#,
    ),
    (
        "dot-segments",
        r#"{"attributes": {"request": {"http": {"method": "GET", "host": "a", "path": "//x/./y/../%61dmin/;p=1/..;/z%2F"}}}}"#,
    ),
    (
        "raw-header-map",
        r#"{"attributes": {"source": {"principal": "GW"}, "request": {"http": {"method": "GET", "host": "h", "path": "/", "headerMap": {"headers": [{"key": "remote-user", "rawValue": "/3Fs"}, {"key": "remote-user", "value": "b"}]}}}}}"#,
    ),
    (
        "grpc-call",
        r#"{"attributes": {"source": {"principal": "spiffe://cluster.local/ns/app/sa/web"}, "request": {"http": {"method": "POST", "host": "svc", "path": "/pkg.Service/Method", "headers": {"content-type": "application/grpc+proto"}}}}}"#,
    ),
    (
        "workload-network",
        r#"{"attributes": {"source": {"principal": "spiffe://cluster.local/ns/app/sa/web"}, "destination": {"address": {"socketAddress": {"address": "10.0.0.9", "portValue": 5432, "protocol": "UDP"}}}}}"#,
    ),
    (
        "context-extensions",
        r#"{"attributes": {"contextExtensions": {"app": "billing", "cedar_dry_run": "true"}, "tlsSession": {"sni": "app.example.test"}, "request": {"time": "2030-01-01T00:00:00Z", "http": {"method": "DELETE", "host": "[::1]:80", "path": "/billing/1", "headers": {"x-envoy-auth-partial-body": "true", "x-request-id": "r-1"}}}}}"#,
    ),
    (
        "ipv6-and-query",
        r#"{"attributes": {"source": {"address": {"socketAddress": {"address": "::1", "portValue": 1}}}, "request": {"http": {"method": "HEAD", "host": "[::ffff:127.0.0.1]", "path": "/s?q=%20x&q=%20x&empty=&flag", "headers": {"remote-user": "a,b"}}}}}"#,
    ),
    ("empty", r#"{}"#),
    ("empty-http", r#"{"attributes": {"request": {"http": {}}}}"#),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/check_request");
    std::fs::create_dir_all(&dir)?;
    for (name, json) in SEEDS {
        let check = parse_check_request(&json.replace("GW", GATEWAY))?;
        std::fs::write(dir.join(format!("{name}.pb")), check.encode_to_vec())?;
        println!("wrote {name}.pb");
    }
    Ok(())
}
