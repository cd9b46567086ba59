//! HTTP servers run inside the test process: the upstream application
//! (echoes what it received) and a stand-in for Authelia's forward-auth
//! endpoint. Each runs on its own small tokio runtime, stopped on drop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One request as a server saw it: `{"method", "path", "headers":
/// [[name, value], ...]}` with header names lower-case, repeats kept.
fn describe(method: &Method, uri: &Uri, headers: &HeaderMap) -> Value {
    let headers: Vec<Value> = headers
        .iter()
        .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
        .collect();
    json!({
        "method": method.as_str(),
        "path": uri.path_and_query().map_or("", |p| p.as_str()),
        "headers": headers,
    })
}

/// Every value of header `name` in a request described by the servers.
pub fn header_values(request: &Value, name: &str) -> Vec<String> {
    request["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|pair| {
            pair[0]
                .as_str()
                .is_some_and(|k| k.eq_ignore_ascii_case(name))
        })
        .filter_map(|pair| pair[1].as_str().map(str::to_owned))
        .collect()
}

type Seen = Arc<Mutex<Vec<Value>>>;

/// An HTTP server on its own runtime; stops on drop.
struct Background {
    runtime: Option<tokio::runtime::Runtime>,
    port: u16,
}

impl Background {
    fn start(router: axum::Router) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("local addr").port();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let _ = axum::serve(listener, router).await;
        });
        Self {
            runtime: Some(runtime),
            port,
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The upstream application: answers every request with 200 and a JSON
/// description of it (method, path with query, all headers), and records
/// it.
pub struct Upstream {
    server: Background,
    seen: Seen,
}

impl Upstream {
    /// Starts on a free loopback port.
    pub fn start() -> Self {
        let seen = Seen::default();
        let router = axum::Router::new().fallback(echo).with_state(seen.clone());
        Self {
            server: Background::start(router),
            seen,
        }
    }

    /// The port, for Envoy's `upstream` cluster.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }

    /// The received requests whose path (with query) starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with(prefix)))
            .collect()
    }
}

async fn echo(State(seen): State<Seen>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let request = describe(&method, &uri, &headers);
    seen.lock().unwrap().push(request.clone());
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        request.to_string(),
    )
        .into_response()
}

/// Path prefix Envoy puts before the original path (envoy-chain.yaml).
pub const AUTHELIA_PATH_PREFIX: &str = "/api/authz/ext-authz";

/// Stands in for Authelia's forward-auth endpoint as Envoy's HTTP ext_authz
/// calls it: a `session=<user>` cookie naming a known user is answered 200
/// with `Remote-User`, `Remote-Groups` (comma list), `Remote-Email` and
/// `Remote-Name`; without a valid session, paths under `/public` are let
/// through with 200 and no identity (a `bypass` rule), anything else is 401.
pub struct AutheliaStandIn {
    server: Background,
    seen: Seen,
}

#[derive(Clone)]
struct AutheliaState {
    users: Arc<HashMap<String, Vec<String>>>,
    seen: Seen,
}

impl AutheliaStandIn {
    /// Starts with `users` (name, groups) as the session database.
    pub fn start(users: &[(&str, &[&str])]) -> Self {
        let seen = Seen::default();
        let users = users
            .iter()
            .map(|(name, groups)| {
                (
                    (*name).to_owned(),
                    groups.iter().map(|g| (*g).to_owned()).collect(),
                )
            })
            .collect();
        let state = AutheliaState {
            users: Arc::new(users),
            seen: seen.clone(),
        };
        let router = axum::Router::new().fallback(forward_auth).with_state(state);
        Self {
            server: Background::start(router),
            seen,
        }
    }

    /// The port, for the `authelia` cluster of envoy-chain.yaml.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Every auth request received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }
}

async fn forward_auth(
    State(state): State<AutheliaState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    state
        .seen
        .lock()
        .unwrap()
        .push(describe(&method, &uri, &headers));
    let session_user = headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("session="))
        .find(|user| state.users.contains_key(*user));
    if let Some(user) = session_user {
        let groups = state.users[user].join(",");
        return (
            StatusCode::OK,
            [
                ("remote-user", user.to_owned()),
                ("remote-groups", groups),
                ("remote-email", format!("{user}@example.com")),
                ("remote-name", user.to_owned()),
            ],
        )
            .into_response();
    }
    let target = uri.path().strip_prefix(AUTHELIA_PATH_PREFIX).unwrap_or("");
    if target == "/public" || target.starts_with("/public/") {
        return StatusCode::OK.into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [("content-type", "text/plain; charset=utf-8")],
        "401 Unauthorized",
    )
        .into_response()
}
