//! Hostile and malformed CheckRequests against the Check and Explain
//! handlers with the bundled config and policies.
//!
//! Properties: no CheckRequest (control characters, invalid UTF-8 in raw
//! header bytes, enormous values, unknown enum values, absent parts, or
//! arbitrary bytes that happen to decode) panics or becomes a gRPC error;
//! every deny of an HTTP request carries an explicit 4xx/5xx status, and
//! only network checks go without one; and any user name a trusted
//! forwarder sends is the principal's entity id, byte for byte.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use cedar_ext_authz::config::Config;
use cedar_ext_authz::policy::PolicyStore;
use cedar_ext_authz::request::Kind;
use cedar_ext_authz::server::pb::explainer_server::Explainer;
use cedar_ext_authz::server::{CheckService, ExplainService, Shared};
use envoy_types::ext_authz::v3::pb::{Authorization, CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{
    address, socket_address, Address, HeaderMap, HeaderValue, Pipe, SocketAddress,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request, TlsSession,
};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::google::protobuf::Timestamp;
use proptest::prelude::*;
use prost::Message;

/// The service deciding with the bundled config and policies, built once.
fn shared() -> Arc<Shared> {
    static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let config = Config::load(&root.join("config/cedar-ext-authz.yaml")).unwrap();
            let store = PolicyStore::load(&config.policy_dir, &config.request.routes).unwrap();
            Shared::new(config, store)
        })
        .clone()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

/// Values that have broken parsers before, then anything at all.
fn text() -> impl Strategy<Value = String> {
    let odd = prop::sample::select(vec![
        "",
        "/",
        "/admin/users",
        "/..",
        "/%2e%2e/admin",
        "/a/..;/b",
        "/a%2Fb",
        "//x//",
        "/x?a=1&a=2",
        "/x#frag",
        "a,b",
        "GET",
        "get",
        "spiffe://",
        "spiffe://cluster.local/ns//sa/",
        "spiffe://Cluster.local/x",
        "urn:x",
        "[::1]:8080",
        "app.example.test:99999",
        "\u{0}",
        "\u{202e}",
        "zoe\u{308}",
        "x\" } ; permit(principal, action, resource); //",
        "application/grpc",
        "true",
        "%",
        "%zz",
        "\r\n",
    ]);
    prop_oneof![
        3 => odd.prop_map(str::to_owned),
        3 => "\\PC{0,24}",
        2 => "(?s).{0,32}",
        1 => (any::<char>(), 1usize..70_000).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

fn header_name() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        ":path",
        ":authority",
        ":method",
        "host",
        "content-type",
        "remote-user",
        "remote-groups",
        "remote-email",
        "remote-name",
        "x-authentik-username",
        "x-authentik-groups",
        "x-forwarded-user",
        "x-auth-user",
        "authorization",
        "cookie",
        "x-request-id",
        "x-envoy-auth-partial-body",
        "traceparent",
        "Remote-User",
    ]);
    prop_oneof![3 => known.prop_map(str::to_owned), 1 => text()]
}

fn header_map() -> impl Strategy<Value = Option<HeaderMap>> {
    let line = (
        header_name(),
        text(),
        prop::collection::vec(any::<u8>(), 0..24),
    );
    let line = line.prop_map(|(key, value, raw_value)| HeaderValue {
        key,
        value,
        raw_value,
    });
    prop::option::weighted(0.3, prop::collection::vec(line, 0..8))
        .prop_map(|lines| lines.map(|headers| HeaderMap { headers }))
}

fn http_request() -> impl Strategy<Value = HttpRequest> {
    let headers = prop::collection::hash_map(header_name(), text(), 0..10);
    let fields = (text(), text(), text(), text(), text(), text());
    (
        fields,
        headers,
        header_map(),
        any::<i64>(),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(
            |((id, method, path, host, query, body), headers, header_map, size, raw_body)| {
                HttpRequest {
                    id,
                    method,
                    headers,
                    header_map,
                    path,
                    host,
                    query,
                    size,
                    body,
                    raw_body,
                    ..Default::default()
                }
            },
        )
}

/// Addresses with unknown enum values, ports over 65535 and named ports.
fn address() -> impl Strategy<Value = Option<Address>> {
    let port = prop_oneof![
        any::<u32>().prop_map(|p| Some(socket_address::PortSpecifier::PortValue(p))),
        text().prop_map(|n| Some(socket_address::PortSpecifier::NamedPort(n))),
        Just(None),
    ];
    let socket = (any::<i32>(), text(), port).prop_map(|(protocol, address, port)| {
        address::Address::SocketAddress(SocketAddress {
            protocol,
            address,
            port_specifier: port,
            ..Default::default()
        })
    });
    let pipe =
        (text(), any::<u32>()).prop_map(|(path, mode)| address::Address::Pipe(Pipe { path, mode }));
    prop::option::of(prop::option::of(prop_oneof![3 => socket, 1 => pipe]))
        .prop_map(|a| a.map(|address| Address { address }))
}

fn peer() -> impl Strategy<Value = Option<Peer>> {
    let principal = prop_oneof![
        Just(
            "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
                .to_owned()
        ),
        text(),
    ];
    prop::option::of((principal, address(), text())).prop_map(|p| {
        p.map(|(principal, address, certificate)| Peer {
            principal,
            address,
            certificate,
            ..Default::default()
        })
    })
}

fn request() -> impl Strategy<Value = Option<Request>> {
    let time = prop::option::of((any::<i64>(), any::<i32>()))
        .prop_map(|t| t.map(|(seconds, nanos)| Timestamp { seconds, nanos }));
    prop::option::of((time, prop::option::of(http_request())))
        .prop_map(|r| r.map(|(time, http)| Request { time, http }))
}

fn check_request() -> impl Strategy<Value = CheckRequest> {
    let extensions = prop::collection::hash_map(text(), text(), 0..4);
    let sni = prop::option::of(text()).prop_map(|s| s.map(|sni| TlsSession { sni }));
    let attributes = (peer(), peer(), request(), extensions, sni).prop_map(
        |(source, destination, request, context_extensions, tls_session)| AttributeContext {
            source,
            destination,
            request,
            context_extensions,
            tls_session,
            ..Default::default()
        },
    );
    prop::option::weighted(0.95, attributes).prop_map(|attributes| CheckRequest { attributes })
}

/// Runs Check; a gRPC error fails the property.
fn check(request: &CheckRequest) -> Result<CheckResponse, TestCaseError> {
    let service = CheckService::new(shared());
    let response = block_on(service.check(tonic::Request::new(request.clone())));
    response
        .map(tonic::Response::into_inner)
        .map_err(|status| TestCaseError::fail(format!("gRPC error {status:?}")))
}

/// OK or a deny code; a deny of an HTTP request names its HTTP status.
fn assert_decided(request: &CheckRequest, response: &CheckResponse) -> Result<(), TestCaseError> {
    let code = response.status.as_ref().map(|s| s.code);
    prop_assert!(matches!(code, Some(0 | 7 | 16)), "code {code:?}");
    let outcome = shared().evaluate(request);
    let network = outcome
        .facts
        .as_ref()
        .is_some_and(|f| f.kind == Kind::Network);
    match (&response.http_response, code) {
        (None, _) => prop_assert!(network, "HTTP check answered without an HTTP part"),
        (Some(HttpResponse::OkResponse(_)), Some(0)) => {}
        (Some(HttpResponse::DeniedResponse(denied)), Some(7 | 16)) => {
            let status = denied.status.as_ref().map_or(0, |s| s.code);
            prop_assert!(
                (400..=599).contains(&status),
                "deny with HTTP status {status}"
            );
        }
        (other, code) => prop_assert!(false, "code {code:?} with {other:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 384,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_check_request_panics_errors_or_denies_without_a_status(request in check_request()) {
        let response = check(&request)?;
        assert_decided(&request, &response)?;
    }

    #[test]
    fn decoded_arbitrary_bytes_are_decided_without_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(request) = CheckRequest::decode(bytes.as_slice()) {
            let response = check(&request)?;
            assert_decided(&request, &response)?;
        }
    }

    #[test]
    fn any_user_name_arrives_as_exactly_that_entity_id(name in "[^,]{1,40}") {
        let principal = explain_principal(&name);
        prop_assert_eq!(principal, serde_json::json!({"type": "User", "id": name}));
    }
}

/// Explain's principal for `remote-user: <name>` from the trusted gateway.
fn explain_principal(name: &str) -> serde_json::Value {
    let shared = shared();
    let gateway = shared.config.identity.trusted_forwarders[0].clone();
    let http = HttpRequest {
        method: "GET".into(),
        path: "/".into(),
        host: "app.example.test".into(),
        headers: HashMap::from([("remote-user".to_owned(), name.to_owned())]),
        ..Default::default()
    };
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                principal: gateway,
                ..Default::default()
            }),
            request: Some(Request {
                time: None,
                http: Some(http),
            }),
            ..Default::default()
        }),
    };
    let explained = block_on(ExplainService::new(shared).explain(tonic::Request::new(request)));
    let principal = explained.unwrap().into_inner().principal;
    serde_json::from_str(&principal).unwrap_or(serde_json::Value::Null)
}
