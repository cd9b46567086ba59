//! cedar-ext-authz: an Envoy external authorization server that decides
//! with Cedar policies.
//!
//! Modules in the order a request flows through them:
//!
//! - [`config`]: the typed YAML config, read once.
//! - [`request`]: the facts of a CheckRequest, normalised; malformed input
//!   is refused here (path, host, headers, routes).
//! - [`identity`]: verified tokens, Envoy metadata, the trust gate for
//!   headers, and the principal (user, workload or anonymous).
//! - [`mapping`]: principal, action, resource, context and entities for
//!   Cedar, built with the typed API.
//! - [`policy`]: the validated policy set; [`reload`] swaps it while serving.
//! - [`decision`]: Cedar's answer made fail-closed, with an HTTP status.
//! - [`authorize`]: the one function from CheckRequest to outcome;
//!   [`shadow`] runs it again with a shadow policy set, never enforced.
//! - [`response`]: the CheckResponse Envoy receives.
//! - [`server`], [`serve`], [`admin`]: the gRPC services, start-up and
//!   shutdown, and the admin HTTP listener; [`tls`]: TLS and mutual TLS
//!   on the gRPC listener, with rotating certificates.
//! - [`telemetry`], [`otel`], [`metrics`], [`explain`]: the decision log,
//!   traces, metrics and explanations.
//! - [`policy_tests`]: YAML policy test cases, run through [`authorize`].
//! - [`cli`]: the command line.

pub mod admin;
pub mod authorize;
pub mod cli;
pub mod config;
pub mod decision;
pub mod explain;
pub mod identity;
pub mod mapping;
pub mod metrics;
pub mod otel;
pub mod policy;
pub mod policy_tests;
pub mod reload;
pub mod request;
pub mod response;
pub mod serve;
pub mod server;
pub mod shadow;
pub mod telemetry;
pub mod tls;
