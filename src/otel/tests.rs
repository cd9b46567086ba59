use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use tonic::metadata::MetadataMap;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use tracing::Span;

use super::*;
use crate::config::{OtlpProtocol, TelemetryConfig};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";
const OTHER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const OTHER_SPAN: &str = "b7ad6b7169203331";

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| vars.get(name).cloned()
}

fn config(endpoint: &str) -> TelemetryConfig {
    TelemetryConfig {
        otlp_endpoint: endpoint.into(),
        ..TelemetryConfig::default()
    }
}

#[test]
fn nothing_configured_exports_nothing() {
    let plan = ExportPlan::plan(&config(""), env(&[("OTEL_SERVICE_NAME", "x")]));
    assert!(plan.is_off(), "{plan:?}");
    let plan = ExportPlan::plan(&config(""), env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")]));
    assert!(plan.is_off(), "{plan:?}");
}

#[test]
fn generic_endpoint_turns_on_traces_only_with_the_default_protocol() {
    let plan = ExportPlan::plan(
        &config(""),
        env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]),
    );
    let traces = plan.traces.unwrap();
    assert_eq!(traces.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(
        traces.endpoint, None,
        "the exporter reads the variable itself"
    );
    assert!(plan.metrics.is_none());
    assert_eq!(plan.service_name.as_deref(), Some(DEFAULT_SERVICE_NAME));
}

#[test]
fn signal_protocol_wins_over_generic_and_config_wins_over_both() {
    let vars = [
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
    ];
    let plan = ExportPlan::plan(&config(""), env(&vars));
    assert_eq!(plan.traces.unwrap().protocol, OtlpProtocol::Grpc);
    let mut cfg = config("");
    cfg.otlp_protocol = Some(OtlpProtocol::HttpProtobuf);
    let plan = ExportPlan::plan(&cfg, env(&vars));
    assert_eq!(plan.traces.unwrap().protocol, OtlpProtocol::HttpProtobuf);
}

#[test]
fn config_endpoint_is_a_base_url_for_http_and_verbatim_for_grpc() {
    let mut cfg = config("http://collector:4318/");
    cfg.otlp_metrics = true;
    let plan = ExportPlan::plan(&cfg, env(&[]));
    assert_eq!(
        plan.traces.unwrap().endpoint.as_deref(),
        Some("http://collector:4318/v1/traces")
    );
    assert_eq!(
        plan.metrics.unwrap().endpoint.as_deref(),
        Some("http://collector:4318/v1/metrics")
    );
    let mut cfg = config("http://collector:4317");
    cfg.otlp_protocol = Some(OtlpProtocol::Grpc);
    let plan = ExportPlan::plan(&cfg, env(&[]));
    assert_eq!(
        plan.traces.unwrap().endpoint.as_deref(),
        Some("http://collector:4317")
    );
}

#[test]
fn exporter_variables_and_sdk_disabled_are_obeyed() {
    let plan = ExportPlan::plan(
        &config("http://c:4318"),
        env(&[("OTEL_TRACES_EXPORTER", "none")]),
    );
    assert!(plan.traces.is_none());
    let plan = ExportPlan::plan(&config(""), env(&[("OTEL_TRACES_EXPORTER", "otlp")]));
    assert!(
        plan.traces.is_some(),
        "otlp asks for export to the default endpoint"
    );
    let plan = ExportPlan::plan(
        &config(""),
        env(&[("OTEL_METRICS_EXPORTER", "otlp,prometheus")]),
    );
    assert!(plan.metrics.is_some() && plan.traces.is_none());
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let plan = ExportPlan::plan(&config(""), env(&[("OTEL_TRACES_EXPORTER", "zipkin")]));
    assert!(plan.traces.is_none());
    assert_eq!(plan.warnings.len(), 1);
    let plan = ExportPlan::plan(
        &config("http://c:4318"),
        env(&[
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_METRICS_EXPORTER", "otlp"),
        ]),
    );
    assert!(plan.is_off());
}

#[test]
fn https_endpoints_and_ca_certificates_are_noticed() {
    let plan = ExportPlan::plan(
        &config(""),
        env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "HTTPS://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces-ca.pem"),
        ]),
    );
    let traces = plan.traces.unwrap();
    assert!(traces.https);
    assert_eq!(traces.ca_certificate.as_deref(), Some("/traces-ca.pem"));
    let plan = ExportPlan::plan(
        &config("http://c:4317"),
        env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://other:4317")]),
    );
    assert!(
        !plan.traces.unwrap().https,
        "the config's endpoint is in effect"
    );
    let plan = ExportPlan::plan(
        &config("https://c:4318"),
        env(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem")]),
    );
    assert!(plan.traces.unwrap().https);
    assert_eq!(
        plan.warnings.len(),
        1,
        "no CA file for HTTP: {:?}",
        plan.warnings
    );
}

#[test]
fn unsupported_protocol_is_a_warning_and_falls_back() {
    let plan = ExportPlan::plan(
        &config("http://c:4318"),
        env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]),
    );
    assert_eq!(plan.traces.unwrap().protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
}

#[test]
fn service_name_from_config_then_environment_then_default() {
    let mut cfg = config("http://c:4318");
    let plan = ExportPlan::plan(
        &cfg,
        env(&[("OTEL_RESOURCE_ATTRIBUTES", "a=b, service.name=x")]),
    );
    assert_eq!(plan.service_name, None);
    cfg.service_name = Some("authz".into());
    let plan = ExportPlan::plan(&cfg, env(&[("OTEL_SERVICE_NAME", "x")]));
    assert_eq!(plan.service_name.as_deref(), Some("authz"));
}

fn metadata(pairs: &[(&'static str, &str)]) -> MetadataMap {
    let mut map = MetadataMap::new();
    for (k, v) in pairs {
        map.insert(*k, v.parse().unwrap());
    }
    map
}

fn check_with_headers(headers: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

fn ids_of(parent: &Parent) -> (String, String, bool) {
    let c = &parent.context;
    (
        c.trace_id().to_string(),
        c.span_id().to_string(),
        c.is_sampled(),
    )
}

#[test]
fn grpc_traceparent_is_the_parent_with_its_tracestate() {
    let md = metadata(&[
        ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
        ("tracestate", "vendor=1"),
        ("x-b3-traceid", OTHER_TRACE),
        ("x-b3-spanid", OTHER_SPAN),
    ]);
    let check =
        check_with_headers(&[("traceparent", &format!("00-{OTHER_TRACE}-{OTHER_SPAN}-01"))]);
    let parent = extract_parent(&md, &check).unwrap();
    assert_eq!(parent.source, ParentSource::GrpcTraceContext);
    assert_eq!(ids_of(&parent), (TRACE.into(), SPAN.into(), true));
    assert!(parent.context.is_remote());
    assert_eq!(parent.context.trace_state().get("vendor"), Some("1"));
}

#[test]
fn grpc_b3_is_used_when_there_is_no_traceparent() {
    let md = metadata(&[
        ("traceparent", "garbage"),
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", SPAN),
        ("x-b3-sampled", "1"),
    ]);
    let parent = extract_parent(&md, &CheckRequest::default()).unwrap();
    assert_eq!(parent.source, ParentSource::GrpcB3);
    assert_eq!(ids_of(&parent), (TRACE.into(), SPAN.into(), true));
}

#[test]
fn http_traceparent_is_the_fallback() {
    let check = check_with_headers(&[
        ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
        ("tracestate", "k=v"),
    ]);
    let parent = extract_parent(&MetadataMap::new(), &check).unwrap();
    assert_eq!(parent.source, ParentSource::HttpTraceContext);
    assert_eq!(ids_of(&parent), (TRACE.into(), SPAN.into(), true));
    assert_eq!(parent.context.trace_state().get("k"), Some("v"));
}

#[test]
fn http_traceparent_is_read_from_the_raw_header_map_too() {
    let mut check = check_with_headers(&[]);
    let http = check
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .unwrap();
    http.header_map = Some(HeaderMap {
        headers: vec![HeaderValue {
            key: "traceparent".into(),
            value: String::new(),
            raw_value: format!("00-{TRACE}-{SPAN}-00").into_bytes(),
        }],
    });
    let parent = extract_parent(&MetadataMap::new(), &check).unwrap();
    assert_eq!(ids_of(&parent), (TRACE.into(), SPAN.into(), false));
}

#[test]
fn no_or_malformed_context_gives_no_parent() {
    assert_eq!(
        extract_parent(&MetadataMap::new(), &CheckRequest::default()),
        None
    );
    let md = metadata(&[("traceparent", &format!("00-{}-{SPAN}-01", "0".repeat(32)))]);
    let check = check_with_headers(&[("traceparent", "00-xyz-abc-01")]);
    assert_eq!(extract_parent(&md, &check), None);
}

fn b3(pairs: &[(&str, &str)]) -> Option<(String, String, bool)> {
    let map: HashMap<&str, &str> = pairs.iter().copied().collect();
    b3::extract(|name| map.get(name).copied()).map(|c| {
        (
            c.trace_id().to_string(),
            c.span_id().to_string(),
            c.is_sampled(),
        )
    })
}

#[test]
fn b3_multi_header() {
    let want = Some((TRACE.to_owned(), SPAN.to_owned(), true));
    assert_eq!(
        b3(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1")
        ]),
        want
    );
    assert_eq!(
        b3(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "true")
        ]),
        want
    );
    assert_eq!(
        b3(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-flags", "1")
        ]),
        want
    );
    let unsampled = Some((TRACE.to_owned(), SPAN.to_owned(), false));
    assert_eq!(
        b3(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0")
        ]),
        unsampled
    );
    assert_eq!(
        b3(&[("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)]),
        unsampled,
        "deferred"
    );
    assert_eq!(
        b3(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-parentspanid", OTHER_SPAN),
            ("x-b3-sampled", "1"),
        ]),
        want
    );
}

#[test]
fn b3_64_bit_trace_id_is_left_padded() {
    let got = b3(&[
        ("x-b3-traceid", "a3ce929d0e0e4736"),
        ("x-b3-spanid", SPAN),
        ("x-b3-sampled", "1"),
    ]);
    assert_eq!(got.unwrap().0, "0000000000000000a3ce929d0e0e4736");
    let got = b3(&[("b3", &format!("a3ce929d0e0e4736-{SPAN}-1"))]);
    assert_eq!(got.unwrap().0, "0000000000000000a3ce929d0e0e4736");
}

#[test]
fn b3_single_header_forms() {
    let sampled = Some((TRACE.to_owned(), SPAN.to_owned(), true));
    let unsampled = Some((TRACE.to_owned(), SPAN.to_owned(), false));
    assert_eq!(b3(&[("b3", &format!("{TRACE}-{SPAN}-1"))]), sampled);
    assert_eq!(b3(&[("b3", &format!("{TRACE}-{SPAN}-d"))]), sampled);
    assert_eq!(
        b3(&[("b3", &format!("{TRACE}-{SPAN}-1-{OTHER_SPAN}"))]),
        sampled
    );
    assert_eq!(b3(&[("b3", &format!("{TRACE}-{SPAN}-0"))]), unsampled);
    assert_eq!(b3(&[("b3", &format!("{TRACE}-{SPAN}"))]), unsampled);
    // The single header wins over the multi headers.
    assert_eq!(
        b3(&[
            ("b3", &format!("{TRACE}-{SPAN}-1")),
            ("x-b3-traceid", OTHER_TRACE),
            ("x-b3-spanid", OTHER_SPAN),
        ]),
        sampled
    );
}

#[test]
fn b3_malformed_is_ignored() {
    for single in [
        "0".to_owned(),
        "1".to_owned(),
        "d".to_owned(),
        TRACE.to_string(),
        format!("{TRACE}-{SPAN}-2"),
        format!("{TRACE}-{SPAN}-1-xyz"),
        format!("{TRACE}-{SPAN}-1-{OTHER_SPAN}-extra"),
        format!("{}-{SPAN}-1", "0".repeat(32)),
        format!("{TRACE}-{}-1", "0".repeat(16)),
        format!("{TRACE}0-{SPAN}-1"),
        format!("+{}-{SPAN}-1", &TRACE[1..]),
        format!("{TRACE}-+{}-1", &SPAN[1..]),
    ] {
        assert_eq!(b3(&[("b3", &single)]), None, "{single}");
    }
    assert_eq!(b3(&[("x-b3-traceid", TRACE)]), None);
    assert_eq!(b3(&[("x-b3-spanid", SPAN)]), None);
    assert_eq!(b3(&[("x-b3-traceid", "xyz"), ("x-b3-spanid", SPAN)]), None);
    assert_eq!(
        b3(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "yes")
        ]),
        None
    );
}

#[test]
fn without_export_the_log_gets_the_callers_trace_id_only() {
    let parent = Parent {
        context: SpanContext::new(
            TraceId::from_hex(TRACE).unwrap(),
            SpanId::from_hex(SPAN).unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ),
        source: ParentSource::GrpcTraceContext,
    };
    let span = Span::none();
    {
        let _guard = adopt(&span, Some(&parent));
        assert_eq!(ids(), (Some(TRACE.to_owned()), None));
    }
    assert_eq!(ids(), (None, None));
    let _guard = adopt(&span, None);
    assert_eq!(trace_id(), None);
    assert_eq!(span_id(), None);
}
