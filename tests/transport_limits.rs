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

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use support::Server;

/// A POST with a body of `size` bytes, as Envoy sends it with
/// `with_request_body`.
fn upload(size: usize) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "POST".into(),
                    host: "app.example.test".into(),
                    path: "/app/upload".into(),
                    body: "x".repeat(size),
                    size: i64::try_from(size).unwrap(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// The gRPC code in the CheckResponse and the denied HTTP status.
fn verdict(server: &Server, request: CheckRequest) -> Result<(i32, u32), tonic::Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(send(server, request))
}

async fn send(server: &Server, request: CheckRequest) -> Result<(i32, u32), tonic::Status> {
    let endpoint = format!("http://{}", server.grpc_addr());
    let mut client = AuthorizationClient::connect(endpoint)
        .await
        .unwrap()
        .max_encoding_message_size(usize::MAX);
    let response = client.check(request).await?.into_inner();
    let code = response.status.map_or(-1, |s| s.code);
    let http = match response.http_response {
        Some(
            envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse::DeniedResponse(
                d,
            ),
        ) => d
            .status
            .map_or(0, |s: HttpStatus| u32::try_from(s.code).unwrap_or(0)),
        _ => 0,
    };
    Ok((code, http))
}

#[test]
fn check_request_larger_than_tonic_default_is_decided() {
    let server = Server::bundled();
    // 4.5 MB: over tonic's 4 MiB default decode limit, under the configured
    // 8 MiB. Anonymous writes are refused by policy with 401, so a decision
    // (not a transport error) is what proves the message was read.
    let got = verdict(&server, upload(4_500_000));
    assert_eq!(got.unwrap(), (16, 401));
}

#[test]
fn check_request_over_the_configured_limit_is_a_413_deny_not_an_error() {
    let server = Server::bundled();
    let got = verdict(&server, upload(9 * 1024 * 1024));
    assert_eq!(got.unwrap(), (7, 413));
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
