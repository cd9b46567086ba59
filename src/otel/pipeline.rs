//! The export pipelines: OTLP exporters behind the SDK's batch span
//! processor and periodic metric reader, and the `tracing` layer.

use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::config::OtlpProtocol;

use super::plan::{ExportPlan, Target};
use super::EXPORTING;

/// Longest wait for the last spans and metrics at shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The installed export pipelines; [`OtelGuard::shutdown`] (or drop)
/// flushes what is queued.
#[derive(Debug, Default)]
pub struct OtelGuard {
    traces: Option<SdkTracerProvider>,
    metrics: Option<SdkMeterProvider>,
}

impl OtelGuard {
    /// Builds the exporters of `plan`. Must run inside a Tokio runtime,
    /// which has to outlive the guard (the gRPC exporter runs on it).
    pub fn install(plan: &ExportPlan) -> anyhow::Result<Self> {
        let mut guard = Self::default();
        if plan.is_off() {
            return Ok(guard);
        }
        let resource = resource(plan);
        if let Some(target) = &plan.traces {
            let exporter = span_exporter(target)?;
            guard.traces = Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource.clone())
                    .build(),
            );
        }
        if let Some(target) = &plan.metrics {
            let exporter = metric_exporter(target)?;
            let provider = SdkMeterProvider::builder()
                .with_periodic_exporter(exporter)
                .with_resource(resource)
                .build();
            crate::metrics::export_otlp(&opentelemetry::metrics::MeterProvider::meter_with_scope(
                &provider,
                scope(),
            ));
            guard.metrics = Some(provider);
        }
        Ok(guard)
    }

    /// The `tracing` layer that turns Check spans into OpenTelemetry spans,
    /// when spans are exported. Only this crate's spans reach it (not its
    /// events, nor the spans of the exporter's own HTTP/gRPC stack), and
    /// the log level does not filter it.
    pub fn layer<S>(&self) -> Option<impl Layer<S>>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let provider = self.traces.as_ref()?;
        EXPORTING.store(true, Ordering::SeqCst);
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer_with_scope(scope()))
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_span() && meta.target().starts_with(env!("CARGO_CRATE_NAME"))
            }));
        Some(layer)
    }

    /// Whether spans are exported.
    pub fn exports_traces(&self) -> bool {
        self.traces.is_some()
    }

    /// Whether metrics are pushed over OTLP.
    pub fn exports_metrics(&self) -> bool {
        self.metrics.is_some()
    }

    /// Exports what is queued and stops the pipelines. Idempotent.
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.traces.take() {
            EXPORTING.store(false, Ordering::SeqCst);
            if let Err(error) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                tracing::warn!(error = %error, "span export at shutdown failed");
            }
        }
        if let Some(provider) = self.metrics.take() {
            if let Err(error) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                tracing::warn!(error = %error, "metric export at shutdown failed");
            }
        }
    }
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` are read by the SDK;
/// the config's service name wins over both.
fn resource(plan: &ExportPlan) -> Resource {
    let builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    match &plan.service_name {
        Some(name) => builder.with_service_name(name.clone()).build(),
        None => builder.build(),
    }
}

fn span_exporter(target: &Target) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match target.protocol {
        OtlpProtocol::Grpc => grpc(builder.with_tonic(), target)?.build(),
        OtlpProtocol::HttpProtobuf => http(builder.with_http(), target).build(),
    };
    exporter.map_err(|e| anyhow::anyhow!("cannot build the OTLP span exporter: {e}"))
}

fn metric_exporter(target: &Target) -> anyhow::Result<opentelemetry_otlp::MetricExporter> {
    let builder = opentelemetry_otlp::MetricExporter::builder();
    let exporter = match target.protocol {
        OtlpProtocol::Grpc => grpc(builder.with_tonic(), target)?.build(),
        OtlpProtocol::HttpProtobuf => http(builder.with_http(), target).build(),
    };
    exporter.map_err(|e| anyhow::anyhow!("cannot build the OTLP metric exporter: {e}"))
}

/// The endpoint and TLS of a gRPC exporter of either signal. Without an
/// endpoint the exporter reads `OTEL_EXPORTER_OTLP_*` itself.
fn grpc<B: WithExportConfig + WithTonicConfig>(builder: B, target: &Target) -> anyhow::Result<B> {
    let builder = match &target.endpoint {
        Some(url) => builder.with_endpoint(url),
        None => builder,
    };
    if target.https {
        return Ok(builder.with_tls_config(tls_config(target)?));
    }
    Ok(builder)
}

/// The endpoint and encoding of an HTTP/protobuf exporter of either signal.
fn http<B: WithExportConfig>(builder: B, target: &Target) -> B {
    let builder = builder.with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
    match &target.endpoint {
        Some(url) => builder.with_endpoint(url),
        None => builder,
    }
}

/// TLS for gRPC export: the system roots (which honour `SSL_CERT_FILE`)
/// plus the configured CA, if any.
fn tls_config(target: &Target) -> anyhow::Result<ClientTlsConfig> {
    let tls = ClientTlsConfig::new().with_enabled_roots();
    let Some(path) = &target.ca_certificate else {
        return Ok(tls);
    };
    let pem = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read the OTLP CA certificate `{path}`: {e}"))?;
    Ok(tls.ca_certificate(Certificate::from_pem(pem)))
}

// ---------------------------------------------------------------------------
// Parent extraction
// ---------------------------------------------------------------------------
