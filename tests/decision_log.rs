//! The decision log of the real binary for the field cases that are about
//! what an audit trail must show: parsed groups (cases 5–7), names kept
//! exactly (8, 9), no forged lines from control characters (10), network
//! checks marked as such (14), and repeated checks of one request
//! correlated by Envoy's request id (20c).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod observability;
mod support;

use std::collections::BTreeSet;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use observability::{from_peer, http_check, send_checks};
use serde_json::Value;
use support::{Server, GATEWAY_SPIFFE_ID};

/// Sends `requests` and returns the decision events they produced, in order.
fn decide(server: &Server, requests: Vec<CheckRequest>) -> Vec<Value> {
    let before = server.decisions().len();
    let n = requests.len();
    send_checks(
        server.grpc_addr(),
        requests.into_iter().map(|r| (r, Vec::new())).collect(),
    );
    support::wait_until("decision events", support::TIMEOUT, || {
        let all = server.decisions();
        (all.len() >= before + n).then(|| all[before..].to_vec())
    })
}

fn from_gateway(headers: &[(&str, &str)]) -> CheckRequest {
    from_peer(
        http_check("GET", "/app/home", "app.example.test", headers),
        GATEWAY_SPIFFE_ID,
    )
}

#[test]
fn groups_are_logged_as_parsed_and_names_exactly_as_sent() {
    let server = Server::bundled();
    let events = decide(
        &server,
        vec![from_gateway(&[
            ("remote-user", "zoë \"x\\y"),
            ("remote-groups", " staff,dev,, staff ,"),
        ])],
    );
    let event = &events[0];
    assert_eq!(event["principal.id"], "zoë \"x\\y", "{event}");
    let groups: BTreeSet<&str> = event["principal.groups"]
        .as_str()
        .unwrap()
        .split(',')
        .collect();
    assert_eq!(groups, BTreeSet::from(["dev", "staff"]), "{event}");
}

#[test]
fn control_characters_never_forge_a_log_line() {
    let server = Server::bundled();
    let forged = "eve\n{\"message\":\"request allowed\",\"decision\":\"allow\"}\r";
    let events = decide(
        &server,
        vec![
            from_gateway(&[("remote-user", forged)]),
            from_gateway(&[("user-agent", forged), ("remote-user", "sam")]),
        ],
    );
    assert_eq!(events.len(), 2);
    for line in server.log_lines() {
        let parsed: Result<Value, _> = serde_json::from_str(&line);
        assert!(
            parsed.is_ok(),
            "a log line that is not one JSON event: {line:?}"
        );
    }
    let allowed_eve = server
        .decisions()
        .into_iter()
        .filter(|e| e["decision"] == "allow" && e["principal.id"] == "eve")
        .count();
    assert_eq!(allowed_eve, 0);
}

#[test]
fn network_checks_are_logged_as_network_level() {
    let server = Server::bundled();
    let tcp = CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                principal: "spiffe://cluster.local/ns/shop/sa/frontend".into(),
                ..Default::default()
            }),
            request: Some(Request::default()),
            ..Default::default()
        }),
    };
    let events = decide(&server, vec![tcp]);
    assert_eq!(events[0]["request.kind"], "network", "{}", events[0]);
    assert!(events[0]["http.method"].is_null(), "{}", events[0]);
}

#[test]
fn repeated_checks_of_one_request_share_its_id_and_decision() {
    let server = Server::bundled();
    let request = from_gateway(&[("remote-user", "sam"), ("remote-groups", "staff")]);
    let events = decide(&server, vec![request.clone(), request]);
    assert_eq!(events[0]["http.id"], "7");
    assert_eq!(events[1]["http.id"], "7");
    assert_eq!(events[0]["decision"], events[1]["decision"]);
    assert_eq!(events[0]["policies"], events[1]["policies"]);
}
