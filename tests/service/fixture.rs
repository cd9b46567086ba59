//! Builds policy folders, configs and CheckRequests for service tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cedar_ext_authz::config::Config;
use cedar_ext_authz::policy::PolicyStore;
use cedar_ext_authz::server::{CheckService, Shared};
use envoy_types::ext_authz::v3::pb::{Authorization, CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address, Address, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;

/// SPIFFE id of the trusted forwarder in every fixture config.
pub const GATEWAY: &str = "spiffe://cluster.local/ns/istio-system/sa/ingress";

/// The project's schema, which every fixture policy set is validated against.
pub fn schema() -> String {
    std::fs::read_to_string(repo().join("policies/schema.cedarschema")).unwrap()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A policy folder and a service deciding with it.
pub struct Fixture {
    /// Kept so the policy folder outlives the service.
    _dir: tempfile::TempDir,
    pub service: CheckService,
    pub shared: Arc<Shared>,
}

impl Fixture {
    /// Policies `text` with the project schema and a config trusting GATEWAY.
    pub fn new(text: &str) -> Self {
        Self::with_config(text, "")
    }

    /// As `new`, with extra YAML appended to the base config.
    pub fn with_config(text: &str, extra_yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_policies(dir.path(), &schema(), text, None);
        let yaml = format!(
            "policy_dir: {}\nidentity:\n  trusted_forwarders: [\"{GATEWAY}\"]\n{extra_yaml}",
            dir.path().display()
        );
        let config = Config::parse(&yaml, Path::new("test.yaml"), dir.path()).unwrap();
        let store = PolicyStore::load(&config.policy_dir, &config.request.routes).unwrap();
        let shared = Shared::new(config, store);
        let service = CheckService::new(shared.clone());
        Self {
            _dir: dir,
            service,
            shared,
        }
    }

    /// Calls Check and returns the response.
    pub async fn check(&self, request: CheckRequest) -> CheckResponse {
        let response = self.service.check(tonic::Request::new(request)).await;
        response
            .expect("a decision is never a gRPC error")
            .into_inner()
    }
}

/// Writes a policy folder.
pub fn write_policies(dir: &Path, schema: &str, policies: &str, entities: Option<&str>) {
    std::fs::write(dir.join("schema.cedarschema"), schema).unwrap();
    std::fs::write(dir.join("policies.cedar"), policies).unwrap();
    if let Some(entities) = entities {
        std::fs::write(dir.join("entities.json"), entities).unwrap();
    }
}

/// A CheckRequest as Envoy's HTTP filter sends it.
pub fn http(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let mut map: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.entry(":path".into()).or_insert_with(|| path.into());
    let http = HttpRequest {
        method: method.into(),
        path: path.into(),
        host: "api.example.test".into(),
        headers: map,
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(peer(GATEWAY, "10.0.0.5", 40123)),
            request: Some(Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// As `http`, from a given mTLS peer ("" for none).
pub fn from_peer(mut request: CheckRequest, principal: &str) -> CheckRequest {
    let attrs = request.attributes.as_mut().unwrap();
    attrs.source.as_mut().unwrap().principal = principal.into();
    request
}

/// Mutable access to the HTTP part of a request.
pub fn http_mut(request: &mut CheckRequest) -> &mut HttpRequest {
    let attrs = request.attributes.as_mut().unwrap();
    attrs.request.as_mut().unwrap().http.as_mut().unwrap()
}

pub fn peer(principal: &str, ip: &str, port: u32) -> Peer {
    Peer {
        principal: principal.into(),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                ..Default::default()
            })),
        }),
        ..Default::default()
    }
}

/// gRPC code and HTTP status of a response (HTTP 200 for allow, 0 when the
/// response carries no HTTP part).
pub fn verdict(response: &CheckResponse) -> (i32, i32) {
    let code = response.status.as_ref().map_or(-1, |s| s.code);
    let http = match &response.http_response {
        Some(HttpResponse::DeniedResponse(d)) => d.status.as_ref().map_or(0, |s| s.code),
        Some(HttpResponse::OkResponse(_)) => 200,
        Some(HttpResponse::ErrorResponse(_)) => -2,
        None => 0,
    };
    (code, http)
}

pub const ALLOW: (i32, i32) = (0, 200);
pub const DENY: (i32, i32) = (7, 403);
pub const UNAUTHENTICATED: (i32, i32) = (16, 401);
pub const BAD_REQUEST: (i32, i32) = (7, 400);
