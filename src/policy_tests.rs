//! Policy tests: YAML cases, each an HTTP request as Envoy would send it
//! and the decision, status and determining policies expected.
//!
//! Cases run through [`crate::authorize::evaluate`], the code path the
//! server uses, so a passing case is a statement about production. Reading
//! the case files and reporting are here; the decision is not.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use envoy_types::pb::google::protobuf::Timestamp;
use prost::Message;
use serde::Deserialize;

use crate::authorize::{self, Outcome};
use crate::config::Config;
use crate::policy::PolicyStore;

/// One file of cases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    /// Request fields every case starts from.
    #[serde(default)]
    defaults: RequestSpec,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    request: RequestSpec,
    expect: Expect,
}

/// An HTTP request as Envoy describes it in a CheckRequest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    method: Option<String>,
    path: Option<String>,
    host: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The mTLS peer's SPIFFE id.
    source_principal: Option<String>,
    /// `ip:port` of the client.
    source_address: Option<String>,
    #[serde(default)]
    context_extensions: BTreeMap<String, String>,
    /// RFC 3339 request time.
    time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    decision: Verdict,
    status: Option<u16>,
    /// Exactly these determining policy ids, in any order.
    policies: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Allow,
    Deny,
}

/// Totals of one run.
#[derive(Debug, Default)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    /// Human-readable report, one line per case plus failure details.
    pub report: String,
}

/// Why cases could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: case `{case}`: {reason}")]
    Case {
        path: PathBuf,
        case: String,
        reason: String,
    },
}

/// Runs every `*.yaml` case file in `dir` (sorted by name).
pub fn run(dir: &Path, config: &Config, store: &PolicyStore) -> Result<Summary, CaseError> {
    let mut summary = Summary::default();
    for path in case_files(dir)? {
        let text = std::fs::read_to_string(&path).map_err(|e| read_error(&path, &e))?;
        let file: CaseFile = serde_yaml_ng::from_str(&text).map_err(|e| CaseError::Parse {
            path: path.clone(),
            line: e.location().map_or(0, |l| l.line()),
            reason: e.to_string(),
        })?;
        for case in &file.cases {
            let request = merge(&file.defaults, &case.request);
            let check = build(&request).map_err(|reason| CaseError::Case {
                path: path.clone(),
                case: case.name.clone(),
                reason,
            })?;
            let outcome = authorize::evaluate(&check, check.encoded_len(), config, store);
            record(&mut summary, &path, case, &outcome);
        }
    }
    let _ = writeln!(
        summary.report,
        "{} passed, {} failed",
        summary.passed, summary.failed
    );
    Ok(summary)
}

fn case_files(dir: &Path) -> Result<Vec<PathBuf>, CaseError> {
    let entries = std::fs::read_dir(dir).map_err(|e| read_error(dir, &e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

fn read_error(path: &Path, e: &std::io::Error) -> CaseError {
    CaseError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn merge(defaults: &RequestSpec, case: &RequestSpec) -> RequestSpec {
    let mut merged = defaults.clone();
    let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
    merged.method = pick(&defaults.method, &case.method);
    merged.path = pick(&defaults.path, &case.path);
    merged.host = pick(&defaults.host, &case.host);
    merged.source_principal = pick(&defaults.source_principal, &case.source_principal);
    merged.source_address = pick(&defaults.source_address, &case.source_address);
    merged.time = pick(&defaults.time, &case.time);
    merged.headers.extend(case.headers.clone());
    merged
        .context_extensions
        .extend(case.context_extensions.clone());
    merged
}

/// Builds the CheckRequest Envoy would send for a spec.
fn build(spec: &RequestSpec) -> Result<CheckRequest, String> {
    let path = spec.path.clone().unwrap_or_else(|| "/".into());
    let mut headers: std::collections::HashMap<String, String> = spec
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    headers.insert(":path".into(), path.clone());
    let http = HttpRequest {
        method: spec.method.clone().unwrap_or_else(|| "GET".into()),
        host: spec
            .host
            .clone()
            .unwrap_or_else(|| "app.example.test".into()),
        path,
        headers,
        ..Default::default()
    };
    let time = spec.time.as_deref().map(timestamp).transpose()?;
    let source = Peer {
        principal: spec.source_principal.clone().unwrap_or_default(),
        address: spec.source_address.as_deref().map(address).transpose()?,
        ..Default::default()
    };
    Ok(CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(source),
            request: Some(Request {
                time,
                http: Some(http),
            }),
            context_extensions: spec.context_extensions.clone().into_iter().collect(),
            ..Default::default()
        }),
    })
}

fn timestamp(text: &str) -> Result<Timestamp, String> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("time `{text}`: {e}"))?;
    Ok(Timestamp {
        seconds: at.unix_timestamp(),
        nanos: i32::try_from(at.nanosecond()).unwrap_or(0),
    })
}

fn address(text: &str) -> Result<envoy_types::pb::envoy::config::core::v3::Address, String> {
    use envoy_types::pb::envoy::config::core::v3::{address, socket_address, SocketAddress};
    let parsed: std::net::SocketAddr = text
        .parse()
        .map_err(|e| format!("source_address `{text}`: {e}"))?;
    Ok(envoy_types::pb::envoy::config::core::v3::Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: parsed.ip().to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                parsed.port(),
            ))),
            ..Default::default()
        })),
    })
}

fn record(summary: &mut Summary, path: &Path, case: &Case, outcome: &Outcome) {
    let file = path
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    match mismatch(&case.expect, outcome) {
        None => {
            summary.passed += 1;
            let _ = writeln!(summary.report, "ok    {file}: {}", case.name);
        }
        Some(why) => {
            summary.failed += 1;
            let _ = writeln!(summary.report, "FAIL  {file}: {}\n      {why}", case.name);
        }
    }
}

/// What differs between the expectation and the outcome, if anything.
fn mismatch(expect: &Expect, outcome: &Outcome) -> Option<String> {
    let d = &outcome.decision;
    let got = if d.is_allow() {
        Verdict::Allow
    } else {
        Verdict::Deny
    };
    let mut got_policies = d.policies.clone();
    got_policies.sort();
    let mut want_policies = expect.policies.clone();
    if let Some(p) = want_policies.as_mut() {
        p.sort();
    }
    let ok = got == expect.decision
        && expect.status.is_none_or(|s| s == d.http_status)
        && want_policies.as_ref().is_none_or(|p| *p == got_policies);
    if ok {
        return None;
    }
    let why = outcome
        .refusal
        .as_deref()
        .or(outcome.fault.as_deref())
        .map(|r| format!("; refused: {r}"))
        .unwrap_or_default();
    let errors = if d.errors.is_empty() {
        String::new()
    } else {
        format!("; errors: {}", d.errors.join("; "))
    };
    Some(format!(
        "expected {:?} {} {:?}, got {:?} {} {:?}{why}{errors}",
        expect.decision,
        expect.status.map_or_else(|| "-".into(), |s| s.to_string()),
        expect.policies.clone().unwrap_or_default(),
        got,
        d.http_status,
        got_policies,
    ))
}
