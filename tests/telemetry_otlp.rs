#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Traces: the real server exports one span per Check to an OTLP receiver
//! built from the OpenTelemetry protocol definitions, in the caller's
//! trace, with the decision on it; the decision log carries the same ids.
//! The last test runs a real Envoy with its OpenTelemetry tracer.

mod observability;
mod support;

use observability::{
    from_peer, http_check, http_status, new_trace_id, policies_with_an_erroring_one, send_check,
    send_checks, span_id, Authz, Receiver, SpanRecord, Transport,
};
use serde_json::{json, Value};
use support::envoy::{CEDAR_PORT, UPSTREAM_PORT};
use support::{Envoy, HttpRequest, Upstream};

const SERVICE: &str = "cedar-ext-authz-test";
const CHECK_SPAN: &str = "envoy.service.auth.v3.Authorization/Check";
/// OTLP span kinds and status codes.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const STATUS_UNSET: i32 = 0;
const STATUS_ERROR: i32 = 2;

/// Export to `receiver` over gRPC, configured by the environment only,
/// with a short batch delay so tests do not wait 5 s.
fn grpc_env(receiver: &Receiver) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_url()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_SERVICE_NAME", SERVICE.into()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=test".into(),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ]
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Attributes every Check span has, whatever the decision.
fn assert_rpc_span(span: &SpanRecord) {
    assert_eq!(span.name, CHECK_SPAN);
    assert_eq!(span.kind, SERVER, "{span:#?}");
    assert_eq!(span.scope, "cedar-ext-authz");
    assert_eq!(span.attr("rpc.system"), "grpc");
    assert_eq!(
        span.attr("rpc.service"),
        "envoy.service.auth.v3.Authorization"
    );
    assert_eq!(span.attr("rpc.method"), "Check");
    assert_eq!(span.attr("rpc.grpc.status_code"), 0);
    assert_eq!(
        span.events, 0,
        "the decision log is not copied into the span"
    );
}

/// The decision log line of `span` names it.
fn assert_log_joins(server: &Authz, span: &SpanRecord) -> Value {
    let event = server.wait_decision_in_trace(&span.trace_id);
    assert_eq!(event["span_id"], span.span_id.as_str(), "{event}");
    event
}

#[test]
fn grpc_traceparent_parents_the_check_span_and_the_log_joins_it() {
    let receiver = Receiver::start();
    let server = Authz::start("", &as_refs(&grpc_env(&receiver)));
    let trace = new_trace_id();
    let parent = span_id(1);
    let traceparent = format!("00-{trace}-{parent}-01");
    let reply = send_check(
        server.grpc_addr(),
        http_check("GET", "/public/report", "api.example.test", &[]),
        &[("traceparent", &traceparent), ("tracestate", "envoy=1")],
    );
    assert_eq!(http_status(&reply), 200);

    let span = receiver.wait_span(SERVICE, &trace);
    assert_rpc_span(&span);
    assert_eq!(span.transport, Transport::Grpc);
    assert_eq!(span.parent_span_id, parent);
    assert_eq!(span.trace_state, "envoy=1");
    assert_eq!(span.resource["deployment.environment.name"], "test");
    assert_eq!(span.resource["service.version"], env!("CARGO_PKG_VERSION"));
    let want = [
        ("http.request.method", json!("GET")),
        ("url.path", json!("/public/report")),
        ("server.address", json!("api.example.test")),
        ("client.address", json!("10.0.0.5")),
        ("client.port", json!(40123)),
        ("http.response.status_code", json!(200)),
        ("cedar.decision", json!("allow")),
        ("cedar.policies", json!(["public-read"])),
        ("cedar.principal", json!("Anonymous::\"anonymous\"")),
        ("cedar.action", json!("Action::\"GET\"")),
        ("cedar.resource", json!("Path::\"/public/report\"")),
        ("cedar.identity.source", json!("none")),
        ("cedar.identity.trusted", json!(false)),
        ("cedar.dry_run", json!(false)),
    ];
    for (key, value) in want {
        assert_eq!(span.attr(key), &value, "{key} in {span:#?}");
    }
    assert_eq!(span.attr("cedar.errors"), &Value::Null);
    assert_eq!(span.status_code, STATUS_UNSET);

    let event = assert_log_joins(&server, &span);
    assert_eq!(event["decision"], "allow");
    assert_eq!(event["http.path"], "/public/report");
}

#[test]
fn b3_metadata_parents_the_check_span_and_a_deny_is_not_an_error() {
    let receiver = Receiver::start();
    let server = Authz::start("", &as_refs(&grpc_env(&receiver)));

    // Multi-header B3, as Envoy's Zipkin tracer sends it.
    let trace = new_trace_id();
    let parent = span_id(2);
    let reply = send_check(
        server.grpc_addr(),
        from_peer(
            http_check("GET", "/app/settings", "api.example.test", &[]),
            "spiffe://cluster.local/ns/untrusted/sa/job",
        ),
        &[
            ("x-b3-traceid", &trace),
            ("x-b3-spanid", &parent),
            ("x-b3-parentspanid", &span_id(99)),
            ("x-b3-sampled", "1"),
        ],
    );
    assert_eq!(http_status(&reply), 403);
    let span = receiver.wait_span(SERVICE, &trace);
    assert_rpc_span(&span);
    assert_eq!(span.parent_span_id, parent);
    assert_eq!(span.attr("cedar.decision"), "deny");
    assert_eq!(span.attr("cedar.deny_reason"), "forbidden");
    assert_eq!(
        span.attr("cedar.policies"),
        &json!(["untrusted-namespace-denied"])
    );
    assert_eq!(
        span.attr("cedar.principal"),
        "Workload::\"spiffe://cluster.local/ns/untrusted/sa/job\""
    );
    assert_eq!(span.attr("cedar.identity.source"), "spiffe");
    assert_eq!(span.attr("http.response.status_code"), 403);
    assert_eq!(span.status_code, STATUS_UNSET, "a deny is not an error");
    assert_log_joins(&server, &span);

    // Single-header B3 with a 64-bit trace id.
    let short = &new_trace_id()[16..];
    let parent = span_id(3);
    send_check(
        server.grpc_addr(),
        http_check("GET", "/public/x", "api.example.test", &[]),
        &[("b3", &format!("{short}-{parent}-1"))],
    );
    let span = receiver.wait_span(SERVICE, &format!("{:0>32}", short));
    assert_eq!(span.parent_span_id, parent);
    assert_log_joins(&server, &span);
}

#[test]
fn traceparent_in_the_checked_request_is_the_fallback_parent() {
    let receiver = Receiver::start();
    let server = Authz::start("", &as_refs(&grpc_env(&receiver)));
    let trace = new_trace_id();
    let parent = span_id(4);
    let traceparent = format!("00-{trace}-{parent}-01");
    send_check(
        server.grpc_addr(),
        http_check(
            "GET",
            "/public/a",
            "api.example.test",
            &[("traceparent", &traceparent)],
        ),
        &[],
    );
    let span = receiver.wait_span(SERVICE, &trace);
    assert_eq!(span.parent_span_id, parent);
    assert_log_joins(&server, &span);

    // Metadata wins over the request's own header.
    let other = new_trace_id();
    send_check(
        server.grpc_addr(),
        http_check(
            "GET",
            "/public/b",
            "api.example.test",
            &[("traceparent", &format!("00-{other}-{}-01", span_id(5)))],
        ),
        &[("traceparent", &format!("00-{trace}-{}-01", span_id(6)))],
    );
    let span = receiver.wait_spans("the span with the metadata's parent", |spans| {
        spans
            .iter()
            .find(|s| s.parent_span_id == span_id(6))
            .cloned()
    });
    assert_eq!(span.trace_id, trace);
    assert!(receiver.spans().iter().all(|s| s.trace_id != other));

    // No context anywhere: the span starts a trace, the log still joins.
    send_check(
        server.grpc_addr(),
        http_check("GET", "/public/c", "api.example.test", &[]),
        &[],
    );
    let span = receiver.wait_spans("the root span", |spans| {
        spans
            .iter()
            .find(|s| s.attr("url.path") == "/public/c")
            .cloned()
    });
    assert_eq!(span.parent_span_id, "");
    assert_log_joins(&server, &span);
}

#[test]
fn evaluation_errors_mark_the_span_as_an_error() {
    let receiver = Receiver::start();
    let policies = policies_with_an_erroring_one();
    let server = Authz::start_in(policies.path(), "", &as_refs(&grpc_env(&receiver)));
    let trace = new_trace_id();
    let reply = send_check(
        server.grpc_addr(),
        http_check("GET", "/public/a", "api.example.test:8443", &[]),
        &[("traceparent", &format!("00-{trace}-{}-01", span_id(7)))],
    );
    assert_ne!(http_status(&reply), 200, "evaluation errors deny");
    let span = receiver.wait_span(SERVICE, &trace);
    assert_eq!(span.status_code, STATUS_ERROR, "{span:#?}");
    assert_eq!(span.status_message, "1 policy evaluation error(s)");
    assert_eq!(span.attr("cedar.decision"), "deny");
    assert_eq!(span.attr("cedar.deny_reason"), "evaluation_error");
    let errors = span.attr("cedar.errors").as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].as_str().unwrap().contains("port-overflow"),
        "{errors:?}"
    );
    assert_log_joins(&server, &span);
}

#[test]
fn http_protobuf_export_configured_by_the_config_file() {
    let receiver = Receiver::start();
    let yaml = format!(
        "telemetry:\n  otlp_endpoint: {}\n  otlp_protocol: http/protobuf\n  service_name: from-config\n",
        receiver.http_url()
    );
    let server = Authz::start(
        &yaml,
        &[
            ("OTEL_SERVICE_NAME", "loses-to-the-config"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let trace = new_trace_id();
    let parent = span_id(8);
    send_check(
        server.grpc_addr(),
        http_check("POST", "/app/x", "api.example.test", &[]),
        &[("traceparent", &format!("00-{trace}-{parent}-01"))],
    );
    let span = receiver.wait_span("from-config", &trace);
    assert_eq!(span.transport, Transport::HttpProtobuf);
    assert_rpc_span(&span);
    assert_eq!(span.parent_span_id, parent);
    assert_eq!(span.attr("http.response.status_code"), 401);
    assert_eq!(
        span.attr("cedar.policies"),
        &json!(["anonymous-cannot-write"])
    );
    assert_log_joins(&server, &span);
}

#[test]
fn grpc_export_over_tls_trusts_the_configured_ca() {
    let pki = support::TestPki::generate();
    let receiver = Receiver::start_tls(
        &pki.dir().join("server.pem"),
        &pki.dir().join("server-key.pem"),
    );
    let endpoint = format!("https://localhost:{}", receiver.grpc_port());
    let ca = pki.ca_pem_path();
    let server = Authz::start(
        "",
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.to_str().unwrap()),
            ("OTEL_SERVICE_NAME", SERVICE),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let trace = new_trace_id();
    send_check(
        server.grpc_addr(),
        http_check("GET", "/public/tls", "api.example.test", &[]),
        &[("traceparent", &format!("00-{trace}-{}-01", span_id(14)))],
    );
    let span = receiver.wait_span(SERVICE, &trace);
    assert_eq!(span.parent_span_id, span_id(14));
}

#[test]
fn spans_of_the_last_checks_are_flushed_on_sigterm() {
    let receiver = Receiver::start();
    let mut env = grpc_env(&receiver);
    // Batches would leave only after a minute: what arrives, the shutdown sent.
    env.retain(|(k, _)| *k != "OTEL_BSP_SCHEDULE_DELAY");
    env.push(("OTEL_BSP_SCHEDULE_DELAY", "60000".into()));
    let mut server = Authz::start("", &as_refs(&env));
    let traces: Vec<String> = (0..5).map(|_| new_trace_id()).collect();
    let headers: Vec<String> = traces
        .iter()
        .map(|t| format!("00-{t}-{}-01", span_id(9)))
        .collect();
    let requests = headers
        .iter()
        .map(|h| {
            (
                http_check("GET", "/public/last", "api.example.test", &[]),
                vec![("traceparent", h.as_str())],
            )
        })
        .collect();
    send_checks(server.grpc_addr(), requests);
    assert_eq!(
        receiver.trace_exports(),
        0,
        "nothing exported before shutdown"
    );

    let status = server.terminate();
    assert!(status.success(), "{status}\n{}", server.dump());
    for trace in &traces {
        let span = receiver.wait_span(SERVICE, trace);
        assert_log_joins(&server, &span);
    }
}

#[test]
fn nothing_is_exported_when_nothing_is_configured_and_the_log_keeps_the_trace_id() {
    let server = Authz::start("", &[]);
    let trace = new_trace_id();
    send_check(
        server.grpc_addr(),
        http_check("GET", "/public/a", "api.example.test", &[]),
        &[("traceparent", &format!("00-{trace}-{}-01", span_id(10)))],
    );
    let event = server.wait_decision_in_trace(&trace);
    assert_eq!(
        event["span_id"],
        Value::Null,
        "no span is exported: {event}"
    );
    let export = server
        .events()
        .into_iter()
        .find(|e| e["message"] == "opentelemetry export")
        .expect("the export plan is logged");
    assert_eq!(export["traces"], "off", "{export}");
    assert_eq!(export["metrics"], "off", "{export}");
}

#[test]
fn log_format_and_level_are_switchable_and_do_not_filter_spans() {
    let receiver = Receiver::start();
    let mut env = grpc_env(&receiver);
    env.push(("RUST_LOG", "warn".into()));
    let quiet = Authz::start("log:\n  format: json\n", &as_refs(&env));
    let trace = new_trace_id();
    send_check(
        quiet.grpc_addr(),
        http_check("GET", "/public/quiet", "api.example.test", &[]),
        &[("traceparent", &format!("00-{trace}-{}-01", span_id(11)))],
    );
    receiver.wait_span(SERVICE, &trace);
    assert!(
        quiet.decisions().is_empty(),
        "RUST_LOG=warn hides info decision events\n{}",
        quiet.dump()
    );

    let human = Authz::start("log:\n  format: human\n", &[("RUST_LOG", "info")]);
    let trace = new_trace_id();
    send_check(
        human.grpc_addr(),
        http_check("GET", "/public/human", "api.example.test", &[]),
        &[("traceparent", &format!("00-{trace}-{}-01", span_id(12)))],
    );
    let deadline = std::time::Instant::now() + support::TIMEOUT;
    let line = loop {
        let found = human
            .log_lines()
            .into_iter()
            .find(|l| l.contains("request allowed"));
        if let Some(line) = found {
            break line;
        }
        assert!(std::time::Instant::now() < deadline, "{}", human.dump());
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(serde_json::from_str::<Value>(&line).is_err(), "{line}");
    assert!(line.contains(&trace), "{line}");
}

/// A collector that accepts connections and never answers: the batch
/// processor waits on it in the background, Checks do not, and shutdown
/// gives up on it after a bounded time.
#[test]
fn an_unresponsive_collector_neither_delays_checks_nor_blocks_shutdown() {
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", blackhole.local_addr().unwrap());
    let mut server = Authz::start(
        "",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "10"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1"),
        ],
    );
    let requests = (0..300)
        .map(|i| {
            let path = format!("/public/{i}");
            (
                http_check("GET", &path, "api.example.test", &[]),
                Vec::new(),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    let replies = send_checks(server.grpc_addr(), requests);
    let elapsed = started.elapsed();
    assert!(replies.iter().all(|r| http_status(r) == 200));
    // One export waiting on the collector alone takes 10 s (the exporter's
    // timeout); 300 Checks that waited would take far longer.
    assert!(
        elapsed < std::time::Duration::from_secs(8),
        "300 Checks took {elapsed:?}"
    );
    let started = std::time::Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status}\n{}", server.dump());
    println!(
        "300 Checks in {elapsed:?} with an unresponsive collector; exit {:?} after SIGTERM",
        started.elapsed()
    );
    drop(blackhole);
}

/// Envoy (its OpenTelemetry tracer exporting to the receiver) in front of
/// the server: a request with a `traceparent` yields Envoy's server span,
/// Envoy's ext_authz client span, and our Check span, in one trace.
#[test]
fn envoy_trace_continues_into_the_decision_span() {
    let receiver = Receiver::start();
    let upstream = Upstream::start();
    let server = Authz::start("", &as_refs(&grpc_env(&receiver)));
    let envoy = Envoy::builder("../../tests/fixtures/envoy-otel.yaml")
        .port(CEDAR_PORT, server.grpc_port())
        .port(UPSTREAM_PORT, upstream.port())
        .port(OTLP_PORT, receiver.grpc_port())
        .start();
    envoy.warm_up(&HttpRequest::get("/public/warm-up"), 200);

    let trace = new_trace_id();
    let client_span = span_id(13);
    let response = HttpRequest::get("/public/traced")
        .header("traceparent", &format!("00-{trace}-{client_span}-01"))
        .send(envoy.http_port());
    assert_eq!(response.status, 200, "{}", response.text());

    let ours = receiver.wait_span(SERVICE, &trace);
    assert_rpc_span(&ours);
    assert_eq!(ours.attr("url.path"), "/public/traced");
    assert_eq!(ours.attr("cedar.decision"), "allow");
    // Its parent is a span Envoy exported: the ext_authz gRPC call.
    let ext_authz = receiver.wait_spans("Envoy's ext_authz span", |spans| {
        spans
            .iter()
            .find(|s| s.service == "envoy" && s.span_id == ours.parent_span_id)
            .cloned()
    });
    assert_eq!(ext_authz.trace_id, trace);
    assert_eq!(ext_authz.kind, CLIENT, "{ext_authz:#?}");
    assert!(
        ext_authz
            .name
            .contains("envoy.service.auth.v3.Authorization"),
        "{ext_authz:#?}"
    );
    // ... whose parent is Envoy's span for the request, child of the client.
    let ingress = receiver.wait_spans("Envoy's request span", |spans| {
        spans
            .iter()
            .find(|s| s.service == "envoy" && s.span_id == ext_authz.parent_span_id)
            .cloned()
    });
    assert_eq!(ingress.kind, SERVER, "{ingress:#?}");
    assert_eq!(ingress.parent_span_id, client_span);

    let event = assert_log_joins(&server, &ours);
    assert_eq!(event["http.path"], "/public/traced");
    print_sample_trace(&[&ingress, &ext_authz, &ours], &event);
}

/// The OTLP/gRPC port of tests/fixtures/envoy-otel.yaml.
const OTLP_PORT: u16 = 4317;

/// Prints the trace and the log line (`cargo test -- --nocapture`), the
/// source of the sample in docs/observability.md.
fn print_sample_trace(spans: &[&SpanRecord], event: &Value) {
    for span in spans {
        println!(
            "{} {} kind={} trace={} span={} parent={} status={}",
            span.service,
            span.name,
            span.kind,
            span.trace_id,
            span.span_id,
            span.parent_span_id,
            span.status_code
        );
        for (key, value) in &span.attributes {
            println!("    {key} = {value}");
        }
    }
    println!("{event}");
}
