//! The export plan: where spans and metrics go, from the `telemetry:`
//! config and the standard `OTEL_*` variables.

use crate::config::{OtlpProtocol, TelemetryConfig};

/// Where one signal goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub protocol: OtlpProtocol,
    /// Full URL from the config file; `None` lets the exporter read
    /// `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (or use the protocol's localhost default).
    pub endpoint: Option<String>,
    /// The endpoint in effect is `https://`: gRPC then verifies the
    /// collector against the system roots (`SSL_CERT_FILE` works) and
    /// `ca_certificate`.
    pub https: bool,
    /// PEM file of `OTEL_EXPORTER_OTLP_<SIGNAL>_CERTIFICATE` or
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`, trusted for gRPC over TLS.
    pub ca_certificate: Option<String>,
}

/// What is exported, decided once at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportPlan {
    pub traces: Option<Target>,
    pub metrics: Option<Target>,
    /// `service.name` to set; `None` when the environment names it.
    pub service_name: Option<String>,
    /// Settings that were ignored, for the log once it is up.
    pub warnings: Vec<String>,
}

impl ExportPlan {
    /// Plans from the config and the process environment.
    pub fn from_env(config: &TelemetryConfig) -> Self {
        Self::plan(config, |name| std::env::var(name).ok())
    }

    /// Plans from the config and `env` (a variable lookup).
    pub fn plan(config: &TelemetryConfig, env: impl Fn(&str) -> Option<String>) -> Self {
        let env = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut plan = Self::default();
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return plan;
        }
        let has_endpoint = !config.otlp_endpoint.trim().is_empty();

        let traces_wanted = match exporter_choice(&env, "OTEL_TRACES_EXPORTER", &mut plan) {
            Some(wanted) => wanted,
            None => {
                has_endpoint
                    || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
                    || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            }
        };
        if traces_wanted {
            plan.traces = Some(target(config, &env, "TRACES", "/v1/traces", &mut plan));
        }

        let metrics_wanted = match exporter_choice(&env, "OTEL_METRICS_EXPORTER", &mut plan) {
            Some(wanted) => wanted,
            None => config.otlp_metrics || env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").is_some(),
        };
        if metrics_wanted {
            plan.metrics = Some(target(config, &env, "METRICS", "/v1/metrics", &mut plan));
        }

        let env_names_service = env("OTEL_SERVICE_NAME").is_some()
            || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attrs| {
                attrs
                    .split(',')
                    .any(|kv| kv.split('=').next().map(str::trim) == Some("service.name"))
            });
        plan.service_name = match &config.service_name {
            Some(name) => Some(name.clone()),
            None if env_names_service => None,
            None => Some(super::DEFAULT_SERVICE_NAME.to_owned()),
        };
        plan
    }

    /// Whether anything is exported.
    pub fn is_off(&self) -> bool {
        self.traces.is_none() && self.metrics.is_none()
    }
}

/// `OTEL_<SIGNAL>S_EXPORTER`: `Some(true)` for `otlp`, `Some(false)` for
/// `none` or only unsupported exporters, `None` when unset.
fn exporter_choice(
    env: &impl Fn(&str) -> Option<String>,
    var: &str,
    plan: &mut ExportPlan,
) -> Option<bool> {
    let value = env(var)?;
    let names: Vec<String> = value
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    if names.iter().any(|n| n == "none") {
        return Some(false);
    }
    for name in names.iter().filter(|n| *n != "otlp") {
        // Prometheus is served at /metrics whatever this says.
        if !(var == "OTEL_METRICS_EXPORTER" && name == "prometheus") {
            plan.warnings.push(format!(
                "{var}: exporter `{name}` is not supported; only otlp"
            ));
        }
    }
    Some(names.iter().any(|n| n == "otlp"))
}

fn target(
    config: &TelemetryConfig,
    env: &impl Fn(&str) -> Option<String>,
    signal: &str,
    http_path: &str,
    plan: &mut ExportPlan,
) -> Target {
    let protocol = config.otlp_protocol.unwrap_or_else(|| {
        [
            format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"),
            "OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(),
        ]
        .iter()
        .find_map(|var| {
            let value = env(var)?;
            match value.to_ascii_lowercase().as_str() {
                "grpc" => Some(OtlpProtocol::Grpc),
                "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
                _ => {
                    plan.warnings.push(format!(
                        "{var}: `{value}` is not supported; use grpc or http/protobuf"
                    ));
                    None
                }
            }
        })
        .unwrap_or(OtlpProtocol::HttpProtobuf)
    });
    let base = config.otlp_endpoint.trim();
    let endpoint = (!base.is_empty()).then(|| match protocol {
        OtlpProtocol::Grpc => base.to_owned(),
        OtlpProtocol::HttpProtobuf => format!("{}{http_path}", base.trim_end_matches('/')),
    });
    let in_effect = endpoint
        .clone()
        .or_else(|| env(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")))
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let https = in_effect.is_some_and(|url| url.to_ascii_lowercase().starts_with("https://"));
    let ca_certificate = env(&format!("OTEL_EXPORTER_OTLP_{signal}_CERTIFICATE"))
        .or_else(|| env("OTEL_EXPORTER_OTLP_CERTIFICATE"));
    if ca_certificate.is_some() && protocol == OtlpProtocol::HttpProtobuf {
        plan.warnings.push(
            "OTEL_EXPORTER_OTLP_CERTIFICATE applies to grpc only; for http/protobuf \
             add the CA to the system roots or name it in SSL_CERT_FILE"
                .to_owned(),
        );
    }
    Target {
        protocol,
        endpoint,
        https,
        ca_certificate,
    }
}
