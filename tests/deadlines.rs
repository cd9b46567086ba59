//! Deadlines: the `grpc-timeout` a caller sends (Envoy sends its ext_authz
//! `timeout`) is respected by the real server binary.
//!
//! A Check is decided in the same step that decodes it, so a request that
//! has arrived is answered with its decision however short the deadline;
//! one whose message has not arrived by the deadline is ended with
//! CANCELLED at the deadline instead of holding the stream open. Neither
//! ever allows. A raw HTTP/2 client sends the header itself, because
//! tonic's client would cancel locally first.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod support;

use bytes::Bytes;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use prost::Message;
use support::{Server, GATEWAY_SPIFFE_ID, TIMEOUT};

const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";
const OK: &str = "0";
const CANCELLED: &str = "1";
const DEADLINE_EXCEEDED: &str = "4";
const PERMISSION_DENIED: i32 = 7;

/// `sam` (staff) asks for the admin area: the bundled policies deny.
fn admin_request() -> CheckRequest {
    cedar_ext_authz::cli::parse_check_request(&format!(
        r#"{{"attributes": {{"source": {{"principal": "{GATEWAY_SPIFFE_ID}"}},
          "request": {{"http": {{"method": "GET", "host": "app.example.test",
          "path": "/admin/users",
          "headers": {{"remote-user": "sam", "remote-groups": "staff"}}}}}}}}}}"#
    ))
    .unwrap()
}

/// A gRPC length-prefixed message.
fn frame(message: &impl Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&body);
    Bytes::from(framed)
}

/// The answer to one call: `grpc-status` and the response message, if any.
#[derive(Debug)]
struct Answer {
    grpc_status: String,
    response: Option<CheckResponse>,
}

/// Sends one Check with `grpc-timeout: <timeout>` on a new HTTP/2
/// connection; without `send_body` the message is never sent.
async fn call(server: &Server, timeout: &str, send_body: bool) -> Answer {
    let tcp = tokio::net::TcpStream::connect(server.grpc_addr())
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!("http://{}{CHECK_PATH}", server.grpc_addr()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", timeout)
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    if send_body {
        body.send_data(frame(&admin_request()), true).unwrap();
    }
    let response = response.await.unwrap();
    let headers = response.headers().clone();
    let mut stream = response.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = stream.data().await {
        let chunk = chunk.unwrap();
        let _ = stream.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = stream.trailers().await.unwrap().unwrap_or_default();
    let status = trailers.get("grpc-status").or(headers.get("grpc-status"));
    Answer {
        grpc_status: status.map_or("none", |s| s.to_str().unwrap()).to_owned(),
        response: (data.len() > 5).then(|| CheckResponse::decode(&data[5..]).unwrap()),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bounded<T>(future: impl std::future::Future<Output = T>) -> T {
    let answer = runtime().block_on(async { tokio::time::timeout(TIMEOUT, future).await });
    answer.unwrap_or_else(|_| panic!("no answer within {TIMEOUT:?}"))
}

#[test]
fn check_within_its_deadline_gets_its_decision() {
    let server = Server::bundled();
    let answer = bounded(call(&server, "5S", true));
    assert_eq!(answer.grpc_status, OK, "{answer:?}");
    let code = answer.response.and_then(|r| r.status).map(|s| s.code);
    assert_eq!(code, Some(PERMISSION_DENIED));
}

#[test]
fn tiny_grpc_timeout_gets_a_decision_or_cancelled_never_an_allow() {
    let server = Server::bundled();
    let (mut decided, mut cancelled) = (0, 0);
    for _ in 0..20 {
        let answer = bounded(call(&server, "1n", true));
        match answer.grpc_status.as_str() {
            OK => {
                let code = answer.response.and_then(|r| r.status).map(|s| s.code);
                assert_eq!(code, Some(PERMISSION_DENIED), "a late decision changed");
                decided += 1;
            }
            CANCELLED | DEADLINE_EXCEEDED => cancelled += 1,
            other => panic!("grpc-status {other} for a 1 ns deadline"),
        }
    }
    println!("deadline 1n: {decided} decided, {cancelled} cancelled");
}

#[test]
fn check_whose_message_never_arrives_is_cancelled_at_its_deadline() {
    let server = Server::bundled();
    let answer = bounded(call(&server, "200m", false));
    assert!(
        [CANCELLED, DEADLINE_EXCEEDED].contains(&answer.grpc_status.as_str()),
        "{answer:?}"
    );
    assert!(answer.response.is_none());
    assert!(
        server.decisions().is_empty(),
        "decided a request that never came"
    );
}
