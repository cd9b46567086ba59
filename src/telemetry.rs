//! Logs and traces: the subscriber set-up, one span per Check, and the one
//! structured decision event per Check.
//!
//! The decision event has fixed messages ("request allowed" / "request
//! denied") and dotted fields. It never carries a token, cookie or password:
//! header values reach it only through identity parsing, and control
//! characters are escaped by the formatter. Metrics live in the metrics
//! module.

use std::io::IsTerminal;

use tracing::Span;
use tracing_subscriber::{
    fmt, fmt::writer::EitherWriter, fmt::MakeWriter, layer::SubscriberExt, util::SubscriberInitExt,
    EnvFilter, Layer as _,
};

use crate::authorize::Outcome;
use crate::config::{LogConfig, LogFormat, OtlpProtocol, TelemetryConfig};
use crate::identity::Principal;

mod writer;

/// Target of decision events, so they can be filtered or routed apart.
pub const DECISION_TARGET: &str = "cedar_ext_authz::decision";

/// Keeps the log writer flushing and the OpenTelemetry pipelines running
/// until dropped at shutdown, which exports the last spans first.
pub struct TelemetryGuard {
    // Dropped first: the spans are flushed while the log still writes.
    otel: crate::otel::OtelGuard,
    _log: Option<writer::WriterGuard>,
}

impl TelemetryGuard {
    /// Exports the queued spans and metrics now; dropping does it too.
    pub fn shutdown(&mut self) {
        self.otel.shutdown();
    }
}

/// Installs the global subscriber, logs only. `RUST_LOG` overrides the
/// configured level.
pub fn init(config: &LogConfig) -> TelemetryGuard {
    install(config, crate::otel::OtelGuard::default())
}

/// Installs the global subscriber with OpenTelemetry export as planned
/// from `telemetry` and the `OTEL_*` variables. Must run inside a Tokio
/// runtime that outlives the guard. Fails, with nothing installed, when an
/// exporter cannot be built.
pub fn init_with_export(
    config: &LogConfig,
    telemetry: &TelemetryConfig,
) -> anyhow::Result<TelemetryGuard> {
    let plan = crate::otel::ExportPlan::from_env(telemetry);
    let otel = crate::otel::OtelGuard::install(&plan)?;
    let guard = install(config, otel);
    for warning in &plan.warnings {
        tracing::warn!(warning = %warning, "telemetry setting ignored");
    }
    let off = || "off".to_owned();
    tracing::info!(
        traces = plan.traces.as_ref().map_or_else(off, describe),
        metrics = plan.metrics.as_ref().map_or_else(off, describe),
        "opentelemetry export"
    );
    Ok(guard)
}

fn describe(target: &crate::otel::Target) -> String {
    let protocol = match target.protocol {
        OtlpProtocol::Grpc => "grpc",
        OtlpProtocol::HttpProtobuf => "http/protobuf",
    };
    match &target.endpoint {
        Some(url) => format!("{protocol} {url}"),
        None => format!("{protocol} (endpoint from OTEL_EXPORTER_OTLP_*)"),
    }
}

fn install(config: &LogConfig, otel: crate::otel::OtelGuard) -> TelemetryGuard {
    let default = config.level.clone().unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Lines are written in batches by a writer thread, and never dropped
    // (see the writer module). Without a thread, they go straight out.
    let (writer, guard) = match writer::BatchWriter::spawn(std::io::stdout()) {
        Ok((writer, guard)) => (LogWriter::Batched(writer), Some(guard)),
        Err(_) => (LogWriter::Direct, None),
    };
    // The level filters the log only; spans reach the OpenTelemetry layer
    // whatever `RUST_LOG` says.
    let registry = tracing_subscriber::registry().with(otel.layer());
    match config.format {
        LogFormat::Json => {
            let layer = fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(writer)
                .with_filter(filter);
            let _ = registry.with(layer).try_init();
        }
        LogFormat::Human => {
            let ansi = std::io::stdout().is_terminal();
            let layer = fmt::layer()
                .with_ansi(ansi)
                .with_writer(writer)
                .with_filter(filter);
            let _ = registry.with(layer).try_init();
        }
    }
    TelemetryGuard { otel, _log: guard }
}

/// Where log lines go: batched by the writer thread, or straight to
/// stdout when that thread could not start. No allocation per line.
enum LogWriter {
    Batched(writer::BatchWriter),
    Direct,
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = EitherWriter<writer::Line<'a>, std::io::Stdout>;

    fn make_writer(&'a self) -> Self::Writer {
        match self {
            Self::Batched(writer) => EitherWriter::A(writer.make_writer()),
            Self::Direct => EitherWriter::B(std::io::stdout()),
        }
    }
}

/// The span of one Check. Without span export it is a disabled span: the
/// log does not print spans, and the decision event gets the caller's
/// trace id another way, so building one would be work for nothing.
pub fn check_span() -> Span {
    if !crate::otel::exporting() {
        return Span::none();
    }
    tracing::info_span!(
        "envoy.service.auth.v3.Authorization/Check",
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = "envoy.service.auth.v3.Authorization",
        rpc.method = "Check",
    )
}

/// Emits the decision event.
pub fn record_decision(outcome: &Outcome, dry_run: bool) {
    let d = &outcome.decision;
    let facts = outcome.facts.as_ref();
    let http = facts.and_then(|f| f.http.as_ref());
    let identity = outcome.identity.as_ref();
    let cedar = outcome.cedar.as_ref();
    let (principal_type, principal_id) = match cedar {
        Some(c) => (
            c.principal.type_name().to_string(),
            c.principal.id().unescaped().to_owned(),
        ),
        None => (String::new(), String::new()),
    };
    let groups = match identity.map(|i| &i.principal) {
        Some(Principal::User(u)) => u.groups.join(","),
        _ => String::new(),
    };
    // A refusal before the facts were read still names what was asked, from
    // the raw (shortened, unnormalised) values.
    let raw = outcome.raw.as_ref();
    let network = facts.is_some_and(|f| f.kind == crate::request::Kind::Network);
    let (trace_id, span_id) = crate::otel::ids();
    macro_rules! event {
        ($msg:literal) => {
            tracing::info!(
                target: DECISION_TARGET,
                decision = if d.is_allow() { "allow" } else { "deny" },
                deny.kind = d.deny.map(|k| k.as_str()),
                dry_run,
                // A network check's answer has no HTTP part.
                http.status = (!network).then_some(d.http_status),
                policies = %d.policies.join(","),
                errors = %d.errors.join("; "),
                refusal = outcome.refusal.as_deref().or(outcome.fault.as_deref()),
                principal.type = %principal_type,
                principal.id = %principal_id,
                principal.groups = %groups,
                action = cedar.map(|c| c.action.id().unescaped().to_owned()),
                resource.type = cedar.map(|c| c.resource.type_name().to_string()),
                resource.id = cedar.map(|c| c.resource.id().unescaped().to_owned()),
                identity.source = identity.map_or("none", |i| i.source()),
                identity.trusted = identity.is_some_and(|i| i.trusted),
                identity.ignored_headers = %identity.map(|i| i.ignored_headers.join(",")).unwrap_or_default(),
                request.id = facts
                    .and_then(|f| f.request_id.as_deref())
                    .or(raw.and_then(|r| r.request_id.as_deref())),
                request.kind = facts.map(|f| if f.http.is_some() { "http" } else { "network" }),
                source.principal = facts
                    .map(|f| f.source_principal.as_str())
                    .or(raw.map(|r| r.source_principal.as_str())),
                source.address = facts.and_then(|f| f.source_address).map(|a| a.to_string()),
                http.method = http
                    .map(|h| h.method.as_str())
                    .or(raw.map(|r| r.method.as_str())),
                http.host = http
                    .map(|h| h.host.name.as_str())
                    .or(raw.map(|r| r.host.as_str())),
                http.path = http.map(|h| h.path.path.as_str()),
                http.raw_path = http
                    .map(|h| h.raw_path.as_str())
                    .or(raw.map(|r| r.path.as_str())),
                http.id = http.map(|h| h.id.as_str()),
                eval.micros = outcome.micros,
                policy_set.version = %outcome.version,
                trace_id = trace_id.as_deref(),
                span_id = span_id.as_deref(),
                $msg
            )
        };
    }
    if d.is_allow() {
        event!("request allowed");
    } else {
        event!("request denied");
    }
}
