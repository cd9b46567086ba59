#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Service tests of verified identity: the Check handler called with
//! CheckRequests carrying signed assertions (keys generated here, served
//! from a file or a local JWKS URL) or Envoy jwt_authn metadata. Each test
//! names the property or fault it proves and asserts the verdict Envoy
//! gets and, where it matters, what the decision was made for.

#[path = "service/fixture.rs"]
#[allow(dead_code, reason = "shared with the service tests")]
mod fixture;
mod signing;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cedar_ext_authz::identity::jwt::keys;
use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::google::protobuf::{value::Kind, ListValue, Struct, Value as PbValue};
use fixture::*;
use serde_json::{json, Value};
use signing::{jwks, now, TestKey};

const ISSUER: &str = "https://pomerium.example.test";
const AUDIENCE: &str = "api.example.test";
const WEB: &str = "spiffe://cluster.local/ns/app/sa/web";

/// Reads need a scope; writes need a second factor (401 asks for it).
const POLICIES: &str = r#"
@id("reports-need-scope")
permit (principal is User, action == Action::"GET", resource)
when { context has jwt && context.jwt.scopes.contains("reports:read") };

@id("users-write")
permit (principal is User, action in Action::"write", resource);

@id("writes-need-mfa")
@http_status("401")
@message("second factor required")
forbid (principal, action in Action::"write", resource)
when { context has jwt && !context.jwt.amr.contains("mfa") };
"#;

/// A service verifying Pomerium assertions with `keys` from a file.
struct Service {
    fixture: Fixture,
    _jwks: tempfile::NamedTempFile,
}

impl Service {
    fn new(keys: &[&TestKey]) -> Self {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), jwks(keys)).unwrap();
        let source = format!("jwks_file: \"{}\"", file.path().display());
        Self {
            fixture: Fixture::with_config(POLICIES, &pomerium(&source)),
            _jwks: file,
        }
    }
}

/// The identity section of a config verifying Pomerium assertions.
fn pomerium(key_source: &str) -> String {
    format!(
        "  jwt_assertions:\n    - {{source: pomerium, issuer: \"{ISSUER}\", \
         audience: [\"{AUDIENCE}\"], {key_source}, refresh_secs: 1}}\n  jwt_authn: {{}}\n"
    )
}

fn claims(changes: Value) -> Value {
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "u-1", "email": "alice",
        "exp": now() + 600, "iat": now(), "groups": ["staff"],
        "scope": "reports:read", "amr": ["pwd", "mfa"],
    });
    for (k, v) in changes.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

/// A request from an untrusted workload carrying a Pomerium assertion.
fn with_assertion(method: &str, token: &str) -> envoy_types::ext_authz::v3::pb::CheckRequest {
    let request = http(
        method,
        "/reports/q3",
        &[("x-pomerium-jwt-assertion", token)],
    );
    from_peer(request, WEB)
}

#[tokio::test]
async fn verified_assertion_names_the_user_and_its_scopes_reach_policies() {
    let key = TestKey::generate("k1");
    let service = Service::new(&[&key]);
    let request = with_assertion("GET", &key.sign(&claims(json!({}))));
    let outcome = service.fixture.shared.evaluate(&request);
    assert_eq!(outcome.decision.policies, vec!["reports-need-scope"]);
    let cedar = outcome.cedar.unwrap();
    assert_eq!(cedar.principal.id().unescaped(), "alice");
    assert_eq!(outcome.identity.unwrap().source(), "pomerium");
    assert_eq!(verdict(&service.fixture.check(request).await), ALLOW);
}

#[tokio::test]
async fn token_without_the_scope_is_denied_by_policy() {
    let key = TestKey::generate("k1");
    let service = Service::new(&[&key]);
    let token = key.sign(&claims(json!({"scope": "profile"})));
    let response = service.fixture.check(with_assertion("GET", &token)).await;
    assert_eq!(verdict(&response), DENY);
}

#[tokio::test]
async fn step_up_forbid_asks_for_a_second_factor_with_401() {
    let key = TestKey::generate("k1");
    let service = Service::new(&[&key]);
    let password_only = key.sign(&claims(json!({"amr": ["pwd"]})));
    let response = service
        .fixture
        .check(with_assertion("POST", &password_only))
        .await;
    assert_eq!(verdict(&response), UNAUTHENTICATED);
    let with_mfa = key.sign(&claims(json!({})));
    let response = service
        .fixture
        .check(with_assertion("POST", &with_mfa))
        .await;
    assert_eq!(verdict(&response), ALLOW);
}

#[tokio::test]
async fn expired_wrong_audience_and_forged_assertions_deny_401() {
    let key = TestKey::generate("k1");
    let service = Service::new(&[&key]);
    let forger = TestKey::generate("k1");
    let tokens = [
        key.sign(&claims(json!({"exp": now() - 600}))),
        key.sign(&claims(json!({"aud": "other.example.test"}))),
        forger.sign(&claims(json!({}))),
    ];
    for token in tokens {
        let response = service.fixture.check(with_assertion("GET", &token)).await;
        assert_eq!(verdict(&response), UNAUTHENTICATED);
    }
}

#[tokio::test]
async fn invalid_assertion_is_logged_without_the_token() {
    let key = TestKey::generate("k1");
    let service = Service::new(&[&key]);
    let token = key.sign(&claims(json!({"exp": now() - 600})));
    let outcome = service
        .fixture
        .shared
        .evaluate(&with_assertion("GET", &token));
    let refusal = outcome.refusal.unwrap();
    assert!(refusal.contains("pomerium assertion"), "{refusal}");
    assert!(!refusal.contains(token.rsplit('.').next().unwrap()));
}

#[tokio::test]
async fn assertion_and_trusted_headers_naming_different_people_deny_403_naming_both() {
    let key = TestKey::generate("k1");
    let service = Service::new(&[&key]);
    let token = key.sign(&claims(json!({})));
    let request = http(
        "GET",
        "/reports/q3",
        &[("x-pomerium-jwt-assertion", &token), ("remote-user", "bob")],
    );
    let outcome = service.fixture.shared.evaluate(&request);
    let refusal = outcome.refusal.clone().unwrap();
    assert!(refusal.contains("`alice` (pomerium)") && refusal.contains("`bob` (authelia)"));
    assert_eq!(verdict(&service.fixture.check(request).await), DENY);
}

/// Envoy's metadata_context with a jwt_authn payload under `payload`.
fn jwt_authn(payload: &Value) -> Metadata {
    let fields = pb_struct(&json!({ "payload": payload }));
    Metadata {
        filter_metadata: [("envoy.filters.http.jwt_authn".to_owned(), fields)].into(),
        ..Default::default()
    }
}

fn pb_struct(value: &Value) -> Struct {
    let field = |v: &Value| {
        let kind = match v {
            Value::String(s) => Kind::StringValue(s.clone()),
            Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
            Value::Array(items) => Kind::ListValue(ListValue {
                values: items
                    .iter()
                    .map(|i| pb_struct(&json!({"v": i})).fields["v"].clone())
                    .collect(),
            }),
            Value::Object(_) => Kind::StructValue(pb_struct(v)),
            _ => Kind::NullValue(0),
        };
        PbValue { kind: Some(kind) }
    };
    let fields = value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), field(v)));
    Struct {
        fields: fields.collect(),
    }
}

#[tokio::test]
async fn jwt_authn_metadata_names_the_user_and_the_workload_stays_in_context() {
    let key = TestKey::generate("k1");
    let service = Service::new(&[&key]);
    let payload = json!({"iss": "https://mesh.test", "sub": "carol", "scope": "reports:read",
                         "exp": now() + 60});
    let mut request = from_peer(http("GET", "/reports/q3", &[]), WEB);
    request.attributes.as_mut().unwrap().metadata_context = Some(jwt_authn(&payload));
    let outcome = service.fixture.shared.evaluate(&request);
    let cedar = outcome.cedar.as_ref().unwrap();
    assert_eq!(cedar.principal.id().unescaped(), "carol");
    let context = cedar.context.clone().to_json_value().unwrap();
    assert_eq!(context["spiffe_id"], WEB);
    assert_eq!(context["jwt"]["iss"], "https://mesh.test");
    assert!(outcome.decision.is_allow());
}

#[test]
fn broken_jwks_file_stops_start_up() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}",
    )
    .unwrap();
    let yaml = format!(
        "identity:\n{}",
        pomerium(&format!("jwks_file: \"{}\"", file.path().display()))
    );
    let err = cedar_ext_authz::config::Config::parse(
        &yaml,
        std::path::Path::new("t.yaml"),
        std::path::Path::new("/"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no usable public signing key"),
        "{err}"
    );
}

/// A JWKS endpoint on loopback whose document the test can swap, counting
/// requests to every other path.
struct JwksServer {
    document: Arc<Mutex<String>>,
    strays: Arc<AtomicUsize>,
    port: u16,
}

impl JwksServer {
    async fn start(document: String) -> Self {
        let document = Arc::new(Mutex::new(document));
        let strays = Arc::new(AtomicUsize::new(0));
        let (doc, count) = (document.clone(), strays.clone());
        let app = axum::Router::new()
            .route(
                "/jwks",
                axum::routing::get(move || {
                    let doc = doc.clone();
                    async move { doc.lock().unwrap().clone() }
                }),
            )
            .fallback(move || {
                count.fetch_add(1, Ordering::SeqCst);
                async { "{}" }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            document,
            strays,
            port,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_a_url_are_fetched_off_the_request_path_and_follow_rotation() {
    let (old, new) = (TestKey::generate("old"), TestKey::generate("new"));
    let server = JwksServer::start(jwks(&[&old])).await;
    let url = format!("jwks_url: \"http://127.0.0.1:{}/jwks\"", server.port);
    let fixture = Fixture::with_config(POLICIES, &pomerium(&url));
    let sources = &fixture.shared.config.identity.jwt_assertions;
    let tasks = keys::spawn_refresh(sources, Duration::from_secs(10)).await;

    let old_token = old.sign(&claims(json!({})));
    assert_eq!(
        verdict(&fixture.check(with_assertion("GET", &old_token)).await),
        ALLOW
    );

    *server.document.lock().unwrap() = jwks(&[&new]);
    let new_token = new.sign(&claims(json!({})));
    let mut rotated = false;
    for _ in 0..100 {
        let response = fixture.check(with_assertion("GET", &new_token)).await;
        if verdict(&response) == ALLOW {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rotated, "the rotated key was never picked up");
    let response = fixture.check(with_assertion("GET", &old_token)).await;
    assert_eq!(
        verdict(&response),
        UNAUTHENTICATED,
        "a retired key still verifies"
    );
    tasks.iter().for_each(tokio::task::JoinHandle::abort);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_url_named_by_a_token_is_never_fetched() {
    let key = TestKey::generate("k1");
    let server = JwksServer::start(jwks(&[&key])).await;
    let url = format!("jwks_url: \"http://127.0.0.1:{}/jwks\"", server.port);
    let fixture = Fixture::with_config(POLICIES, &pomerium(&url));
    let sources = &fixture.shared.config.identity.jwt_assertions;
    let tasks = keys::spawn_refresh(sources, Duration::from_secs(10)).await;

    let attacker = TestKey::generate("attacker");
    let evil = format!("http://127.0.0.1:{}/evil-jwks", server.port);
    let token = attacker.sign_with(&claims(json!({})), |h| h.jku = Some(evil.clone()));
    let response = fixture.check(with_assertion("GET", &token)).await;
    assert_eq!(verdict(&response), UNAUTHENTICATED);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.strays.load(Ordering::SeqCst), 0);
    tasks.iter().for_each(tokio::task::JoinHandle::abort);
}
