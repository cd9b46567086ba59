//! Shared by the observability tests (tests/telemetry_otlp.rs and
//! tests/metrics.rs): an OTLP receiver (gRPC and HTTP/protobuf, built from
//! the OpenTelemetry protocol definitions), the real server started with
//! chosen `OTEL_*` variables, and a Check client.
//!
//! Processes are killed on drop and every wait is bounded by
//! [`support::TIMEOUT`]. Use with `mod support; mod observability;`.
#![allow(
    dead_code,
    reason = "each test crate uses a different part of the module"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::{address, socket_address, Address, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse as Verdict;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use serde_json::{json, Value};

use crate::support::{HttpRequest as RawHttp, HttpResponse as RawResponse, Lines, TIMEOUT};

// ---------------------------------------------------------------------------
// OTLP receiver
// ---------------------------------------------------------------------------

/// What the receiver got, in arrival order.
#[derive(Default)]
struct Received {
    traces: Vec<(Transport, ExportTraceServiceRequest)>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

/// How an export arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    HttpProtobuf,
}

#[derive(Clone, Default)]
struct Store(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl TraceService for Store {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        self.0
            .lock()
            .unwrap()
            .traces
            .push((Transport::Grpc, request));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Store {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().metrics.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// An OTLP endpoint: gRPC (TraceService, MetricsService) on one port and
/// HTTP/protobuf (`POST /v1/traces`, `/v1/metrics`) on another. Stops when
/// dropped.
pub struct Receiver {
    store: Store,
    grpc: SocketAddr,
    http: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// As [`Receiver::start`], with gRPC over TLS using this certificate
    /// chain and key (PEM files).
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        // tonic's server TLS takes rustls' process-wide provider, which
        // cannot be guessed when several are linked in (ring, aws-lc-rs).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let identity = tonic::transport::Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        );
        Self::start_with(Some(identity))
    }

    fn start_with(tls: Option<tonic::transport::Identity>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store = Store::default();
        let (grpc, http) = runtime.block_on(async {
            let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            (grpc, http)
        });
        let grpc_addr = grpc.local_addr().unwrap();
        let http_addr = http.local_addr().unwrap();
        let mut builder = tonic::transport::Server::builder();
        if let Some(identity) = tls {
            builder = builder
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .unwrap();
        }
        let services = builder
            .add_service(TraceServiceServer::new(store.clone()))
            .add_service(MetricsServiceServer::new(store.clone()));
        runtime.spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc);
            let _ = services.serve_with_incoming(incoming).await;
        });
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_traces))
            .route("/v1/metrics", axum::routing::post(http_metrics))
            .with_state(store.clone());
        runtime.spawn(async move {
            let _ = axum::serve(http, app).await;
        });
        Self {
            store,
            grpc: grpc_addr,
            http: http_addr,
            _runtime: runtime,
        }
    }

    /// `http://127.0.0.1:<port>` of the gRPC endpoint.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub fn grpc_port(&self) -> u16 {
        self.grpc.port()
    }

    /// `http://127.0.0.1:<port>` of the HTTP endpoint (a base URL: the
    /// signal paths are appended by exporters).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<SpanRecord> {
        let received = self.store.0.lock().unwrap();
        received
            .traces
            .iter()
            .flat_map(|(transport, request)| flatten_spans(*transport, request))
            .collect()
    }

    /// Number of trace export requests so far.
    pub fn trace_exports(&self) -> usize {
        self.store.0.lock().unwrap().traces.len()
    }

    /// Waits until `check` finds something among the spans; panics after
    /// [`TIMEOUT`] with the spans received.
    pub fn wait_spans<T>(&self, what: &str, check: impl Fn(&[SpanRecord]) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let spans = self.spans();
            if let Some(found) = check(&spans) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {TIMEOUT:?} waiting for {what}; spans received:\n{spans:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the one span with `trace_id` from service `service`.
    pub fn wait_span(&self, service: &str, trace_id: &str) -> SpanRecord {
        self.wait_spans(&format!("a {service} span in trace {trace_id}"), |spans| {
            spans
                .iter()
                .find(|s| s.service == service && s.trace_id == trace_id)
                .cloned()
        })
    }

    /// The data points of metric `name` in the newest metrics export that
    /// has it.
    pub fn latest_metric(&self, name: &str) -> Option<Vec<MetricPoint>> {
        let received = self.store.0.lock().unwrap();
        received.metrics.iter().rev().find_map(|request| {
            let points: Vec<MetricPoint> = request
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .filter(|m| m.name == name)
                .flat_map(metric_points)
                .collect();
            (!points.is_empty()).then_some(points)
        })
    }

    /// Number of metrics export requests so far.
    pub fn metric_exports(&self) -> usize {
        self.store.0.lock().unwrap().metrics.len()
    }
}

async fn http_traces(
    axum::extract::State(store): axum::extract::State<Store>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (
    axum::http::StatusCode,
    [(&'static str, &'static str); 1],
    Vec<u8>,
) {
    let is_protobuf = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) if is_protobuf => {
            store
                .0
                .lock()
                .unwrap()
                .traces
                .push((Transport::HttpProtobuf, request));
            let reply = ExportTraceServiceResponse::default().encode_to_vec();
            (
                axum::http::StatusCode::OK,
                [("content-type", "application/x-protobuf")],
                reply,
            )
        }
        _ => (
            axum::http::StatusCode::BAD_REQUEST,
            [("content-type", "text/plain")],
            b"not an OTLP/protobuf trace export".to_vec(),
        ),
    }
}

async fn http_metrics(
    axum::extract::State(store): axum::extract::State<Store>,
    body: axum::body::Bytes,
) -> (
    axum::http::StatusCode,
    [(&'static str, &'static str); 1],
    Vec<u8>,
) {
    match ExportMetricsServiceRequest::decode(body) {
        Ok(request) => {
            store.0.lock().unwrap().metrics.push(request);
            let reply = ExportMetricsServiceResponse::default().encode_to_vec();
            (
                axum::http::StatusCode::OK,
                [("content-type", "application/x-protobuf")],
                reply,
            )
        }
        Err(_) => (
            axum::http::StatusCode::BAD_REQUEST,
            [("content-type", "text/plain")],
            Vec::new(),
        ),
    }
}

/// One received span, ids in lower-case hex.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub transport: Transport,
    /// `service.name` of the exporting resource.
    pub service: String,
    pub resource: BTreeMap<String, Value>,
    pub scope: String,
    pub name: String,
    /// OTLP `SpanKind`: 2 server, 3 client.
    pub kind: i32,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub trace_state: String,
    pub attributes: BTreeMap<String, Value>,
    pub events: usize,
    /// OTLP `StatusCode`: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    pub status_message: String,
}

impl SpanRecord {
    /// The attribute `key`, or `Value::Null`.
    pub fn attr(&self, key: &str) -> &Value {
        self.attributes.get(key).unwrap_or(&Value::Null)
    }
}

fn flatten_spans(transport: Transport, request: &ExportTraceServiceRequest) -> Vec<SpanRecord> {
    let mut out = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = resource
            .get("service.name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_spans
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for span in &scope_spans.spans {
                let status = span.status.clone().unwrap_or_default();
                out.push(SpanRecord {
                    transport,
                    service: service.clone(),
                    resource: resource.clone(),
                    scope: scope.clone(),
                    name: span.name.clone(),
                    kind: span.kind,
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    trace_state: span.trace_state.clone(),
                    attributes: attributes(&span.attributes),
                    events: span.events.len(),
                    status_code: status.code,
                    status_message: status.message,
                });
            }
        }
    }
    out
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), any_value(kv.value.as_ref())))
        .collect()
}

fn any_value(value: Option<&AnyValue>) -> Value {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| any_value(Some(v))).collect())
        }
        Some(other) => json!(format!("{other:?}")),
        None => Value::Null,
    }
}

/// One data point of a received metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub attributes: BTreeMap<String, Value>,
    /// Sum or gauge value; for a histogram, its count.
    pub value: f64,
    /// Histogram sum.
    pub sum: Option<f64>,
}

fn metric_points(metric: &opentelemetry_proto::tonic::metrics::v1::Metric) -> Vec<MetricPoint> {
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
    let number = |points: &[opentelemetry_proto::tonic::metrics::v1::NumberDataPoint]| {
        points
            .iter()
            .map(|p| MetricPoint {
                attributes: attributes(&p.attributes),
                #[expect(clippy::cast_precision_loss, reason = "test counters are small")]
                value: match p.value {
                    Some(number_data_point::Value::AsInt(i)) => i as f64,
                    Some(number_data_point::Value::AsDouble(d)) => d,
                    None => f64::NAN,
                },
                sum: None,
            })
            .collect::<Vec<_>>()
    };
    match &metric.data {
        Some(Data::Sum(sum)) => number(&sum.data_points),
        Some(Data::Gauge(gauge)) => number(&gauge.data_points),
        Some(Data::Histogram(histogram)) => histogram
            .data_points
            .iter()
            .map(|p| MetricPoint {
                attributes: attributes(&p.attributes),
                #[expect(clippy::cast_precision_loss, reason = "test counts are small")]
                value: p.count as f64,
                sum: p.sum,
            })
            .collect(),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

/// The repository's example policies.
pub fn bundled_policies() -> PathBuf {
    crate::support::repo_root().join("policies")
}

/// A copy of the example policies plus one policy that fails to evaluate
/// (integer overflow) for requests whose Host has a port, so that a test
/// can cause evaluation errors on purpose.
pub fn policies_with_an_erroring_one() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(bundled_policies()).unwrap() {
        let path = entry.unwrap().path();
        let keep = path
            .extension()
            .is_some_and(|e| e == "cedar" || e == "cedarschema" || e == "json");
        if keep {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        dir.path().join("overflow.cedar"),
        "// Errors (overflow) whenever the Host header names a port.\n\
         @id(\"port-overflow\")\n\
         forbid (principal, action, resource)\n\
         when { context has port && context.port * 9223372036854775807 > 0 };\n",
    )
    .unwrap();
    dir
}

/// A running `cedar-ext-authz serve` with its own environment, killed on
/// drop.
pub struct Authz {
    child: Child,
    stdout: Lines,
    stderr: Lines,
    grpc: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Authz {
    /// Starts the server on the example policies. `yaml` is appended to
    /// the config (e.g. a `telemetry:` section); `env` is added to an
    /// environment without any inherited `OTEL_*` variable, with
    /// `RUST_LOG=info` unless `env` sets it.
    pub fn start(yaml: &str, env: &[(&str, &str)]) -> Self {
        Self::start_in(&bundled_policies(), yaml, env)
    }

    /// As [`Authz::start`], on the policies in `policy_dir`.
    pub fn start_in(policy_dir: &Path, yaml: &str, env: &[(&str, &str)]) -> Self {
        let grpc_port = crate::support::free_port();
        let admin_port = crate::support::free_port();
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("cedar-ext-authz.yaml");
        let config = format!(
            "listen: 127.0.0.1:{grpc_port}\nadmin_listen: 127.0.0.1:{admin_port}\n\
             policy_dir: {}\nshutdown_drain_ms: 100\n{yaml}\n",
            serde_json::to_string(&policy_dir.to_string_lossy()).unwrap()
        );
        std::fs::write(&config_path, config).unwrap();

        let mut command = Command::new(env!("CARGO_BIN_EXE_cedar-ext-authz"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .env_remove("CEDAR_EXT_AUTHZ_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars() {
            if name.starts_with("OTEL_") {
                command.env_remove(name);
            }
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn cedar-ext-authz");
        let stdout = Lines::capture(child.stdout.take().unwrap());
        let stderr = Lines::capture(child.stderr.take().unwrap());
        let server = Self {
            child,
            stdout,
            stderr,
            grpc: SocketAddr::from(([127, 0, 0, 1], grpc_port)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            _dir: dir,
        };
        server.wait_ready()
    }

    fn wait_ready(mut self) -> Self {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("cedar-ext-authz exited with {status}\n{}", self.dump());
            }
            if RawHttp::get("/readyz")
                .try_send(self.admin.port())
                .is_ok_and(|r| r.status == 200)
            {
                return self;
            }
            assert!(
                Instant::now() < deadline,
                "cedar-ext-authz not ready within {TIMEOUT:?}\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    pub fn grpc_port(&self) -> u16 {
        self.grpc.port()
    }

    pub fn admin_port(&self) -> u16 {
        self.admin.port()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GETs `path` from the admin listener.
    pub fn admin_get(&self, path: &str) -> RawResponse {
        RawHttp::get(path).send(self.admin.port())
    }

    /// Every stdout line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.stdout.snapshot()
    }

    /// Every stdout line that is a JSON object.
    pub fn events(&self) -> Vec<Value> {
        parse_events(&self.stdout.snapshot())
    }

    /// The decision events so far.
    pub fn decisions(&self) -> Vec<Value> {
        self.events().into_iter().filter(is_decision).collect()
    }

    /// Waits for a decision event matching `pred`.
    pub fn wait_decision(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.stdout
            .wait_for(TIMEOUT, |lines| {
                parse_events(lines)
                    .into_iter()
                    .filter(is_decision)
                    .find(|e| pred(e))
            })
            .unwrap_or_else(|| panic!("no decision event for {what}\n{}", self.dump()))
    }

    /// Waits for the decision event whose `trace_id` is `trace_id`.
    pub fn wait_decision_in_trace(&self, trace_id: &str) -> Value {
        self.wait_decision(&format!("trace {trace_id}"), |e| e["trace_id"] == trace_id)
    }

    /// Sends SIGTERM (as Kubernetes does) and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {TIMEOUT:?} of SIGTERM\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn dump(&self) -> String {
        format!(
            "server stdout:\n{}\nserver stderr:\n{}",
            self.stdout.snapshot().join("\n"),
            self.stderr.snapshot().join("\n")
        )
    }
}

impl Drop for Authz {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_events(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

fn is_decision(event: &Value) -> bool {
    event["message"] == "request allowed" || event["message"] == "request denied"
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// A CheckRequest as Envoy's HTTP filter sends it: `method path` on host
/// `host` from 10.0.0.5:40123, without a peer certificate.
pub fn http_check(method: &str, path: &str, host: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let mut map: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.insert(":method".into(), method.into());
    map.insert(":path".into(), path.into());
    map.insert(":authority".into(), host.into());
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "10.0.0.5".into(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(40123)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "7".into(),
                    method: method.into(),
                    path: path.into(),
                    host: host.into(),
                    headers: map,
                    protocol: "HTTP/1.1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// `request` as sent by the mTLS peer `principal` (a SPIFFE id).
pub fn from_peer(mut request: CheckRequest, principal: &str) -> CheckRequest {
    let attrs = request.attributes.as_mut().unwrap();
    attrs.source.as_mut().unwrap().principal = principal.into();
    request
}

/// Sends one Check with `metadata` (gRPC request headers).
pub fn send_check(
    server: SocketAddr,
    request: CheckRequest,
    metadata: &[(&str, &str)],
) -> CheckResponse {
    send_checks(server, vec![(request, metadata.to_vec())])
        .pop()
        .unwrap()
}

/// Sends Checks one after another on one connection.
pub fn send_checks(
    server: SocketAddr,
    requests: Vec<(CheckRequest, Vec<(&str, &str)>)>,
) -> Vec<CheckResponse> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{server}"))
            .unwrap()
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .connect()
            .await
            .expect("connect to the Check service");
        let mut client = AuthorizationClient::new(channel);
        let mut replies = Vec::new();
        for (request, metadata) in requests {
            let mut request = tonic::Request::new(request);
            for (name, value) in metadata {
                let name: tonic::metadata::MetadataKey<tonic::metadata::Ascii> =
                    name.parse().unwrap();
                request.metadata_mut().insert(name, value.parse().unwrap());
            }
            let reply = client.check(request).await.expect("Check answers");
            replies.push(reply.into_inner());
        }
        replies
    })
}

/// The HTTP status a Check response gives the client (200 for an allow).
pub fn http_status(response: &CheckResponse) -> i32 {
    match &response.http_response {
        Some(Verdict::OkResponse(_)) => 200,
        Some(Verdict::DeniedResponse(d)) => d.status.as_ref().map_or(0, |s| s.code),
        Some(Verdict::ErrorResponse(_)) => -1,
        None => 0,
    }
}

/// A random-looking W3C trace id, distinct per call in a process.
pub fn new_trace_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let pid = u128::from(std::process::id());
    format!("{:032x}", (nanos << 20) ^ (pid << 100) ^ u128::from(n))
}

/// A span id with the low bits `n`.
pub fn span_id(n: u64) -> String {
    format!("{:016x}", 0x5eed_0000_0000_0000_u64 | n)
}

// ---------------------------------------------------------------------------
// Prometheus text
// ---------------------------------------------------------------------------

/// Parses a Prometheus text exposition into `series -> value`, where a
/// series is written as in the text (`name{label="v",...}`).
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Scrapes `/metrics`.
pub fn scrape(server: &Authz) -> BTreeMap<String, f64> {
    let response = server.admin_get("/metrics");
    assert_eq!(response.status, 200, "{}", response.text());
    parse_prometheus(&response.text())
}
