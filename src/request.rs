//! What Envoy asked: the facts of one CheckRequest, checked and normalised.
//!
//! This module reads the attributes Envoy sends (method, host, path, query,
//! headers, peers, context extensions, time) and refuses anything malformed
//! or ambiguous with a [`Refusal`], which the caller turns into a deny with
//! the refusal's HTTP status. It decides nothing: identity, Cedar mapping
//! and policy evaluation come after it.

pub mod headers;
pub mod host;
pub mod path;
pub mod routes;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::{address, Address, Metadata};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

use crate::config::RequestConfig;
use crate::identity::IdentityError;
use headers::{HeaderError, HeaderLimits, Headers};
use host::{Host, HostError};
use path::{CanonicalPath, PathError, PathLimits};

/// Why a request was refused before any policy ran; every variant denies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("path: {0}")]
    Path(#[from] PathError),
    #[error("host: {0}")]
    Host(#[from] HostError),
    #[error("headers: {0}")]
    Header(#[from] HeaderError),
    #[error("identity: {0}")]
    Identity(#[from] IdentityError),
    #[error("method `{0}` is not an HTTP method token")]
    Method(String),
    #[error("check request is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
}

impl Refusal {
    /// HTTP status of the deny.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Path(e) => e.http_status(),
            Self::Host(_) | Self::Method(_) => 400,
            Self::Header(e) => e.http_status(),
            Self::Identity(e) => e.http_status(),
            Self::TooLarge { .. } => 413,
        }
    }
}

/// Whether Envoy's HTTP filter or its network (TCP) filter asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Network,
}

/// A gRPC call recognised from content-type and `/Service/Method` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    pub service: String,
    pub method: String,
}

/// HTTP-level facts, absent for network-filter checks.
#[derive(Debug, Clone)]
pub struct HttpFacts {
    /// Upper-cased method token.
    pub method: String,
    pub host: Host,
    /// The raw `:path`, kept for the log only.
    pub raw_path: String,
    pub path: CanonicalPath,
    pub grpc: Option<GrpcCall>,
    /// Envoy sent only part of the body (`x-envoy-auth-partial-body`).
    pub body_partial: bool,
    /// Envoy's id for the HTTP request, the same across repeated checks.
    pub id: String,
}

/// Everything the mapping needs from one CheckRequest.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    pub kind: Kind,
    pub http: Option<HttpFacts>,
    pub headers: Headers,
    pub source_principal: String,
    pub source_address: Option<SocketAddr>,
    pub destination_address: Option<SocketAddr>,
    /// Set per route by the operator in Envoy's config, so trusted.
    pub context_extensions: BTreeMap<String, String>,
    pub request_id: Option<String>,
    pub time: SystemTime,
    pub sni: Option<String>,
    /// `metadata_context`: what Envoy's filters (jwt_authn, an earlier
    /// ext_authz) recorded for this request; read by the identity module.
    pub metadata: Option<Metadata>,
}

/// Raw values of a request whose facts could not be read, for the audit
/// log of a refusal. Nothing here is normalised or trusted.
#[derive(Debug, Clone, Default)]
pub struct RawSummary {
    pub method: String,
    pub host: String,
    pub path: String,
    pub request_id: Option<String>,
    pub source_principal: String,
}

/// Longest raw value kept for the log: a refused 1 MB path must not become
/// a 1 MB log line.
const RAW_LOG_CHARS: usize = 256;

impl RawSummary {
    /// Reads the raw values without checking them.
    pub fn of(check: &CheckRequest) -> Self {
        let attrs = check.attributes.as_ref();
        let http = attrs
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let short = |s: &str| s.chars().take(RAW_LOG_CHARS).collect::<String>();
        Self {
            method: http.map_or_else(String::new, |h| short(&h.method)),
            host: http.map_or_else(String::new, |h| short(&h.host)),
            path: http.map_or_else(String::new, |h| short(&h.path)),
            request_id: http
                .and_then(|h| h.headers.get("x-request-id"))
                .map(|v| short(v)),
            source_principal: attrs
                .and_then(|a| a.source.as_ref())
                .map_or_else(String::new, |p| short(&p.principal)),
        }
    }
}

impl RequestFacts {
    /// Reads and checks the attributes of a CheckRequest.
    pub fn read(check: &CheckRequest, config: &RequestConfig) -> Result<Self, Refusal> {
        let empty = AttributeContext::default();
        let attrs = check.attributes.as_ref().unwrap_or(&empty);
        let http = attrs.request.as_ref().and_then(|r| r.http.as_ref());
        let raw = http.and_then(|h| h.header_map.as_ref());
        let limits = HeaderLimits {
            max_headers: config.max_headers,
            max_header_bytes: config.max_header_bytes,
        };
        let map = http.map(|h| &h.headers);
        let headers = match map {
            Some(map) => Headers::read(map, raw, limits)?,
            None => Headers::default(),
        };
        let http = match http {
            Some(h) if is_http(h, &headers) => Some(read_http(h, &headers, config)?),
            _ => None,
        };
        let source = attrs.source.as_ref();
        let destination = attrs.destination.as_ref();
        Ok(Self {
            kind: if http.is_some() {
                Kind::Http
            } else {
                Kind::Network
            },
            request_id: headers.get("x-request-id"),
            http,
            source_principal: source.map(|p| p.principal.clone()).unwrap_or_default(),
            source_address: source.and_then(|p| socket_address(p.address.as_ref())),
            destination_address: destination.and_then(|p| socket_address(p.address.as_ref())),
            context_extensions: attrs.context_extensions.clone().into_iter().collect(),
            time: request_time(attrs),
            sni: attrs
                .tls_session
                .as_ref()
                .map(|t| t.sni.clone())
                .filter(|s| !s.is_empty()),
            metadata: attrs.metadata_context.clone(),
            headers,
        })
    }
}

/// An HTTP part with every field empty is what some clients send for a
/// network check; treat it as one.
fn is_http(
    http: &envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest,
    headers: &Headers,
) -> bool {
    !(http.method.is_empty() && http.path.is_empty() && !headers.contains(":path"))
}

fn read_http(
    http: &envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest,
    headers: &Headers,
    config: &RequestConfig,
) -> Result<HttpFacts, Refusal> {
    let method = if http.method.is_empty() {
        headers.get(":method").unwrap_or_default()
    } else {
        http.method.clone()
    };
    let method = check_method(&method)?;
    let raw_path = if http.path.is_empty() {
        headers.get(":path").unwrap_or_default()
    } else {
        http.path.clone()
    };
    let limits = PathLimits {
        max_path_bytes: config.max_path_bytes,
        max_query_params: config.max_query_params,
    };
    let path = path::canonicalize(&raw_path, &limits)?;
    let authority = headers.get(":authority");
    let host = host::parse_host(&http.host, authority.as_deref())?;
    let grpc = grpc_call(headers, &path.path);
    Ok(HttpFacts {
        method,
        host,
        raw_path,
        grpc,
        body_partial: headers.get("x-envoy-auth-partial-body").as_deref() == Some("true"),
        id: http.id.clone(),
        path,
    })
}

/// Methods are tokens (RFC 9110); they are upper-cased so that a forbid on
/// `DELETE` also covers `delete`.
fn check_method(method: &str) -> Result<String, Refusal> {
    const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~";
    let valid = !method.is_empty()
        && method.len() <= 32
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || TCHAR.contains(&b));
    if !valid {
        return Err(Refusal::Method(method.escape_debug().to_string()));
    }
    Ok(method.to_ascii_uppercase())
}

/// A gRPC request has a content-type starting `application/grpc` and a
/// `/package.Service/Method` path.
fn grpc_call(headers: &Headers, path: &str) -> Option<GrpcCall> {
    let content_type = headers.get("content-type")?;
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/grpc")
    {
        return None;
    }
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let valid = |s: &str| !s.is_empty() && !s.contains('/');
    (valid(service) && valid(method)).then(|| GrpcCall {
        service: service.to_owned(),
        method: method.to_owned(),
    })
}

fn socket_address(address: Option<&Address>) -> Option<SocketAddr> {
    let Some(address::Address::SocketAddress(socket)) = address?.address.as_ref() else {
        return None;
    };
    let ip: IpAddr = socket.address.parse().ok()?;
    let port = match socket.port_specifier {
        Some(
            envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p),
        ) => u16::try_from(p).ok()?,
        _ => 0,
    };
    Some(SocketAddr::new(ip, port))
}

/// Envoy's request time, else now: a decision is never refused for a
/// missing clock reading.
fn request_time(attrs: &AttributeContext) -> SystemTime {
    let Some(ts) = attrs.request.as_ref().and_then(|r| r.time.as_ref()) else {
        return SystemTime::now();
    };
    let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.seconds), u32::try_from(ts.nanos)) else {
        return SystemTime::now();
    };
    // Cedar's `datetime` has four-digit years; a later time cannot be
    // expressed (and would overflow the conversion), so it is unreadable.
    if secs > LATEST_TIME_SECS {
        return SystemTime::now();
    }
    SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos.min(999_999_999))
}

/// 9999-12-31T23:59:59Z, the last second Cedar's `datetime` can express.
const LATEST_TIME_SECS: u64 = 253_402_300_799;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_time_past_year_9999_is_unreadable_and_becomes_now() {
        let at = |seconds| {
            let mut attrs = AttributeContext::default();
            let time = envoy_types::pb::google::protobuf::Timestamp { seconds, nanos: 0 };
            attrs.request = Some(
                envoy_types::pb::envoy::service::auth::v3::attribute_context::Request {
                    time: Some(time),
                    http: None,
                },
            );
            request_time(&attrs)
        };
        let last = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(LATEST_TIME_SECS);
        assert_eq!(at(LATEST_TIME_SECS as i64), last);
        for seconds in [LATEST_TIME_SECS as i64 + 1, i64::MAX] {
            let time = at(seconds);
            assert!(time < last, "{seconds} gave {time:?}");
        }
    }

    #[test]
    fn lower_case_method_is_upper_cased_not_a_new_action() {
        assert_eq!(check_method("delete").unwrap(), "DELETE");
    }

    #[test]
    fn method_that_is_not_a_token_is_refused() {
        for bad in ["", "GE T", "GET\n", "G\u{e9}T", &"A".repeat(33)] {
            assert!(check_method(bad).is_err(), "{bad:?}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let limits = HeaderLimits {
            max_headers: 10,
            max_header_bytes: 100,
        };
        Headers::read(&map, None, limits).unwrap()
    }

    #[test]
    fn grpc_service_and_method_come_from_content_type_and_path() {
        let h = headers(&[("content-type", "application/grpc+proto")]);
        let call = grpc_call(&h, "/shop.v1.Orders/Cancel").unwrap();
        assert_eq!(
            (call.service.as_str(), call.method.as_str()),
            ("shop.v1.Orders", "Cancel")
        );
        let web = headers(&[("content-type", "application/grpc-web-text")]);
        assert!(grpc_call(&web, "/shop.v1.Orders/Get").is_some());
    }

    #[test]
    fn malformed_grpc_path_or_other_content_type_is_not_grpc() {
        let h = headers(&[("content-type", "application/grpc")]);
        assert!(grpc_call(&h, "/shop.v1.Orders").is_none());
        let json = headers(&[("content-type", "application/json")]);
        assert!(grpc_call(&json, "/shop.v1.Orders/Get").is_none());
    }
}
