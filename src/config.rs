//! Typed configuration, read once from a YAML file.
//!
//! Every key has a documented default, unknown keys are refused with their
//! name and line, and relative paths are resolved against the folder of the
//! config file. This module only parses and checks; the modules that use a
//! setting decide what it means.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::identity::Preset;
use crate::request::routes::RouteConfig;

/// gRPC listener for Check, Explain, health and reflection.
const DEFAULT_LISTEN: &str = "127.0.0.1:9191";
/// HTTP listener for `/metrics`, `/healthz` and `/readyz`, kept off the
/// gRPC port so that scraping never competes with decisions.
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9192";
/// Long enough for Envoy's gRPC health checks (every second or so with a
/// `no_traffic_interval`) to see NOT_SERVING before the listener closes.
const DEFAULT_DRAIN_MS: u64 = 2000;
/// Policies sit next to the config file unless told otherwise.
const DEFAULT_POLICY_DIR: &str = "policies";
/// Headers that are useful in policies and never carry secrets.
const DEFAULT_CONTEXT_HEADERS: &[&str] = &["user-agent", "x-request-id", "content-type"];
/// Largest CheckRequest decoded, in bytes: Envoy's default
/// `max_request_bytes` for buffered bodies is far below this, and headers
/// add at most a few hundred KiB.
const DEFAULT_MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the gRPC listener.
    pub listen: SocketAddr,
    /// Address of the admin HTTP listener.
    pub admin_listen: SocketAddr,
    /// Folder with `schema.cedarschema`, `*.cedar` and `entities.json`.
    pub policy_dir: PathBuf,
    /// Optional second policy folder evaluated beside the enforced one.
    pub shadow_policy_dir: Option<PathBuf>,
    /// Time between health turning NOT_SERVING and the listener closing on
    /// SIGTERM, so proxies stop sending new Checks first.
    pub shutdown_drain_ms: u64,
    pub log: LogConfig,
    pub reload: ReloadConfig,
    pub identity: IdentityConfig,
    pub request: RequestConfig,
    pub decision: DecisionConfig,
    pub response: ResponseConfig,
    pub telemetry: TelemetryConfig,
    /// TLS on the gRPC listener (mutual TLS with `client_ca_file`);
    /// absent means plaintext.
    pub tls: Option<crate::tls::TlsConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: parse_const_addr(DEFAULT_LISTEN),
            admin_listen: parse_const_addr(DEFAULT_ADMIN_LISTEN),
            policy_dir: PathBuf::from(DEFAULT_POLICY_DIR),
            shadow_policy_dir: None,
            shutdown_drain_ms: DEFAULT_DRAIN_MS,
            log: LogConfig::default(),
            reload: ReloadConfig::default(),
            identity: IdentityConfig::default(),
            request: RequestConfig::default(),
            decision: DecisionConfig::default(),
            response: ResponseConfig::default(),
            telemetry: TelemetryConfig::default(),
            tls: None,
        }
    }
}

fn parse_const_addr(addr: &str) -> SocketAddr {
    addr.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Decision log and diagnostics output.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// Default filter when `RUST_LOG` is unset.
    pub level: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line: what log pipelines ingest.
    #[default]
    Json,
    /// Human-readable lines for a terminal.
    Human,
}

/// When the policy folder is read again. SIGHUP always reloads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// React to file events in the folder and its parent.
    pub watch: bool,
    /// Compare the folder's content hash this often; 0 turns polling off.
    /// A safety net for filesystems whose events are unreliable.
    pub poll_interval_ms: u64,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch: true,
            poll_interval_ms: 5000,
        }
    }
}

/// Which identity headers are read and when they are believed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Header sets read for a human identity, in priority order.
    pub presets: Vec<Preset>,
    /// SPIFFE ids of proxies allowed to forward identity headers.
    pub trusted_forwarders: Vec<String>,
    /// The operator declares that every path to this server strips
    /// client-sent identity headers before authentication; headers are then
    /// believed from any peer. Off by default: it cannot be checked here.
    pub headers_stripped_by_proxy: bool,
    /// SPIFFE trust domains accepted for workload principals; empty = any.
    pub trust_domains: Vec<String>,
    /// Most groups accepted from one header; more is a 431 deny.
    pub max_groups: usize,
    /// Signed assertions verified here (Authentik, Pomerium, Cloudflare
    /// Access, Google IAP); none by default. See docs/identity.md.
    pub jwt_assertions: Vec<crate::identity::jwt::AssertionConfig>,
    /// Payloads verified by Envoy's `jwt_authn` filter; off unless set.
    pub jwt_authn: Option<crate::identity::metadata::JwtAuthnConfig>,
    /// Identity from an earlier ext_authz step's dynamic metadata; off
    /// unless set.
    pub ext_authz_metadata: Option<crate::identity::metadata::ExtAuthzMetadataConfig>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            presets: vec![Preset::Authelia, Preset::Authentik],
            trusted_forwarders: Vec::new(),
            headers_stripped_by_proxy: false,
            trust_domains: Vec::new(),
            max_groups: 256,
            jwt_assertions: Vec::new(),
            jwt_authn: None,
            ext_authz_metadata: None,
        }
    }
}

/// How the HTTP request becomes a Cedar request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestConfig {
    /// Request headers copied into `context.headers`. Cookie,
    /// authorization and identity headers are refused here at load.
    pub context_headers: Vec<String>,
    /// Longest `:path` accepted; longer is a 414 deny.
    pub max_path_bytes: usize,
    /// Most query parameters accepted; more is a 414 deny.
    pub max_query_params: usize,
    /// Largest CheckRequest accepted; larger is a 413 deny.
    pub max_request_bytes: usize,
    /// Most request headers accepted; more is a 431 deny.
    pub max_headers: usize,
    /// Largest single header value; larger is a 431 deny.
    pub max_header_bytes: usize,
    /// Routes that name actions and typed resources; first match wins.
    pub routes: Vec<RouteConfig>,
}

impl Default for RequestConfig {
    fn default() -> Self {
        Self {
            context_headers: DEFAULT_CONTEXT_HEADERS
                .iter()
                .map(|h| h.to_string())
                .collect(),
            max_path_bytes: 4096,
            max_query_params: 64,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_headers: 128,
            max_header_bytes: 16 * 1024,
            routes: Vec::new(),
        }
    }
}

/// What happens around Cedar's answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionConfig {
    pub on_evaluation_error: OnEvaluationError,
    /// Compute and log decisions but allow every request.
    pub dry_run: bool,
    /// Return the would-be decision in `x-cedar-dry-run` on dry-run allows.
    pub dry_run_header: bool,
    /// Evaluate only the policies whose scope matches the request (same
    /// answer as the whole set); off evaluates every policy, for comparison.
    pub policy_index: bool,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        Self {
            on_evaluation_error: OnEvaluationError::default(),
            dry_run: false,
            dry_run_header: false,
            policy_index: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnEvaluationError {
    /// Any evaluation error denies: Cedar skips an erroring policy, so a
    /// forbid that errors would otherwise let the request through.
    #[default]
    Deny,
    /// Cedar's own semantics: erroring policies are skipped (still logged).
    Skip,
}

/// Headers set on the upstream request when a request is allowed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// Carries the principal's id (user name or SPIFFE id).
    pub user_header: String,
    /// Carries the user's groups, comma-joined.
    pub groups_header: String,
    /// Carries the principal's Cedar type.
    pub principal_type_header: String,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        Self {
            user_header: "x-auth-user".into(),
            groups_header: "x-auth-groups".into(),
            principal_type_header: "x-auth-principal-type".into(),
        }
    }
}

/// OpenTelemetry export; the `OTEL_*` variables fill what is unset here.
/// With no endpoint here and none in the environment, nothing is exported
/// (docs/observability.md lists every variable).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP base URL (`http://collector:4317` for gRPC, `http://collector:4318`
    /// for HTTP, where `/v1/traces` and `/v1/metrics` are appended). Empty
    /// means `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; with none of them set, no spans are
    /// exported.
    pub otlp_endpoint: String,
    /// `grpc` or `http/protobuf`; default from `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`,
    /// then `OTEL_EXPORTER_OTLP_PROTOCOL`, then `http/protobuf`.
    pub otlp_protocol: Option<OtlpProtocol>,
    /// `service.name`; default from `OTEL_SERVICE_NAME` (or `service.name`
    /// in `OTEL_RESOURCE_ATTRIBUTES`), else `cedar-ext-authz`.
    pub service_name: Option<String>,
    /// Also push the metrics of `/metrics` over OTLP (same endpoint and
    /// protocol). Off by default: Prometheus scraping is the primary path;
    /// `OTEL_METRICS_EXPORTER=otlp` turns it on as well.
    pub otlp_metrics: bool,
}

/// Wire protocol of the OTLP exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (collector port 4317).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (collector port 4318).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl Config {
    /// Reads, parses and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, path, base)
    }

    /// Parses config text; `base` anchors relative paths.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                line: e.location().map_or(0, |l| l.line()),
                reason: e.to_string(),
            })?
        };
        config.policy_dir = base.join(&config.policy_dir);
        config.shadow_policy_dir = config.shadow_policy_dir.map(|d| base.join(d));
        if let Some(tls) = &mut config.tls {
            tls.resolve(base);
        }
        // Loads JWKS files now, so a broken key file stops start-up.
        crate::identity::prepare(&mut config.identity, base).map_err(|reason| {
            ConfigError::Invalid {
                path: path.to_owned(),
                reason,
            }
        })?;
        config.check().map_err(|reason| ConfigError::Invalid {
            path: path.to_owned(),
            reason,
        })?;
        Ok(config)
    }

    /// Checks what serde cannot: values that would weaken a guarantee.
    fn check(&mut self) -> Result<(), String> {
        for header in &mut self.request.context_headers {
            *header = header.to_ascii_lowercase();
            if crate::request::headers::is_secret(header) {
                return Err(format!(
                    "request.context_headers: `{header}` may carry a secret and is never \
                     copied into the Cedar context"
                ));
            }
        }
        // One record key per header: names differing only in case are one.
        let mut seen = std::collections::HashSet::new();
        self.request
            .context_headers
            .retain(|header| seen.insert(header.clone()));
        for route in &self.request.routes {
            route.check()?;
        }
        for header in [
            &self.response.user_header,
            &self.response.groups_header,
            &self.response.principal_type_header,
        ] {
            http::HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| format!("response: `{header}` is not a valid header name"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.yaml"), Path::new("/etc/x"))
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.policy_dir, Path::new("/etc/x/policies"));
        assert_eq!(config.decision.on_evaluation_error, OnEvaluationError::Deny);
        assert!(!config.identity.headers_stripped_by_proxy);
    }

    #[test]
    fn unknown_key_is_refused_with_its_name_and_line() {
        let err = parse("listen: 127.0.0.1:1\nidentity:\n  trusted_forwarder: []\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("trusted_forwarder"), "{text}");
        assert!(text.starts_with("test.yaml:3:"), "{text}");
    }

    #[test]
    fn secret_headers_cannot_enter_the_context() {
        for header in [
            "cookie",
            "Authorization",
            "proxy-authorization",
            "x-authentik-jwt",
        ] {
            let text = format!("request:\n  context_headers: [{header}]\n");
            assert!(parse(&text).is_err(), "{header} accepted");
        }
    }

    #[test]
    fn context_headers_differing_in_case_are_one() {
        let config = parse("request:\n  context_headers: [X-Foo, x-foo, x-bar]\n").unwrap();
        assert_eq!(config.request.context_headers, ["x-foo", "x-bar"]);
    }

    #[test]
    fn bad_response_header_name_is_refused() {
        assert!(parse("response:\n  user_header: \"bad header\"\n").is_err());
    }
}
