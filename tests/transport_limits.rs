//! Field cases 12(a) and 20(a) against the real binary: CheckRequests
//! larger than tonic's 4 MiB default arrive over the wire and are decided
//! (or refused with a 413 deny above the configured limit), never turned
//! into a transport error; and a broken policy set at start-up keeps the
//! process from ever serving.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod observability;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use observability::{http_check, http_status, send_check};
use support::Server;

/// A POST with a body of `size` bytes, as Envoy sends it with
/// `with_request_body`.
fn upload(size: usize) -> CheckRequest {
    let mut request = http_check("POST", "/app/upload", "app.example.test", &[]);
    let attrs = request.attributes.as_mut().unwrap();
    let http = attrs.request.as_mut().unwrap().http.as_mut().unwrap();
    http.body = "x".repeat(size);
    http.size = i64::try_from(size).unwrap();
    request
}

/// The gRPC code in the CheckResponse and the HTTP status it gives; a
/// transport error fails the test inside `send_check`.
fn verdict(server: &Server, request: CheckRequest) -> (i32, i32) {
    let response = send_check(server.grpc_addr(), request, &[]);
    let code = response.status.as_ref().map_or(-1, |s| s.code);
    (code, http_status(&response))
}

#[test]
fn check_request_larger_than_tonic_default_is_decided() {
    let server = Server::bundled();
    // 4.5 MB: over tonic's 4 MiB default decode limit, under the configured
    // 8 MiB. Anonymous writes are refused by policy with 401, so a decision
    // (not a transport error) is what proves the message was read.
    assert_eq!(verdict(&server, upload(4_500_000)), (16, 401));
}

#[test]
fn check_request_over_the_configured_limit_is_a_413_deny_not_an_error() {
    let server = Server::bundled();
    assert_eq!(verdict(&server, upload(9 * 1024 * 1024)), (7, 413));
}

#[test]
fn broken_policy_file_at_start_never_serves_and_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let schema = support::repo_root().join("policies/schema.cedarschema");
    std::fs::copy(schema, policies.join("schema.cedarschema")).unwrap();
    std::fs::write(
        policies.join("policies.cedar"),
        "// first line\nnot_a_valid_permit(principal, action, resource);\n",
    )
    .unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\npolicy_dir: policies\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cedar-ext-authz"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server kept running");
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!status.success(), "exit status {status}");
    assert!(
        stderr.contains("policies.cedar:2"),
        "the error names the file and line: {stderr}"
    );
    assert!(
        !stdout.contains("serving"),
        "it never started serving: {stdout}"
    );
}
