//! The gRPC server: Envoy's Authorization service, this project's Explainer,
//! gRPC health and reflection, all on one listener.
//!
//! Handlers only wire: they take the serving policy store (one atomic load,
//! no lock), call [`authorize::evaluate`], build the response and record
//! the decision. A decision is never a gRPC error; `Status` is returned
//! only when the server cannot answer at all.

use std::sync::Arc;

use arc_swap::ArcSwap;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse,
};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::authorize::{self, Outcome};
use crate::config::Config;
use crate::policy::PolicyStore;
use crate::response;
use crate::telemetry;

/// This project's own API, generated from `proto/`.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic, reason = "generated code")]
    tonic::include_proto!("cedar_ext_authz.v1");
}

/// Descriptor set of Envoy's and our services, for reflection.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

/// Context extension that turns on dry-run for one route.
pub const DRY_RUN_EXTENSION: &str = "cedar_dry_run";

/// What every handler shares.
#[derive(Debug)]
pub struct Shared {
    pub config: Arc<Config>,
    /// The serving policy set, swapped whole on reload.
    pub store: ArcSwap<PolicyStore>,
    pub status: crate::reload::ReloadStatus,
    /// The shadow policy set, evaluated beside the serving one and never
    /// enforced; `None` when no shadow folder is configured.
    pub shadow: Option<ArcSwap<PolicyStore>>,
    /// Set when shutdown starts: health reports NOT_SERVING.
    draining: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub fn new(config: Config, store: PolicyStore) -> Arc<Self> {
        Self::with_shadow(config, store, None)
    }

    /// As `new`, with a shadow policy set.
    pub fn with_shadow(
        config: Config,
        store: PolicyStore,
        shadow: Option<PolicyStore>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config: Arc::new(config),
            store: ArcSwap::from_pointee(store),
            shadow: shadow.map(ArcSwap::from_pointee),
            status: crate::reload::ReloadStatus::default(),
            draining: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Marks the server as draining.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether shutdown has started.
    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Decides one request with the serving store.
    pub fn evaluate(&self, check: &CheckRequest) -> Outcome {
        let store = self.store.load();
        authorize::evaluate(check, check.encoded_len(), &self.config, &store)
    }

    /// Whether this request is decided but not enforced.
    pub fn dry_run(&self, outcome: &Outcome) -> bool {
        let per_route = outcome
            .facts
            .as_ref()
            .and_then(|f| f.context_extensions.get(DRY_RUN_EXTENSION))
            .is_some_and(|v| v == "true");
        self.config.decision.dry_run || per_route
    }
}

/// Envoy's `Authorization/Check`.
#[derive(Debug, Clone)]
pub struct CheckService {
    shared: Arc<Shared>,
}

impl CheckService {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The tonic service, with the decode limit applied.
    pub fn server(shared: Arc<Shared>) -> AuthorizationServer<Self> {
        let limit = decode_limit(&shared.config);
        AuthorizationServer::new(Self::new(shared)).max_decoding_message_size(limit)
    }
}

/// Messages up to this size are decoded so that one over the configured
/// limit gets a clean 413 deny; beyond it tonic refuses the message with a
/// gRPC error, which Envoy treats as a failure (deny unless fail-open).
fn decode_limit(config: &Config) -> usize {
    config.request.max_request_bytes.saturating_mul(4)
}

#[tonic::async_trait]
impl Authorization for CheckService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        // The caller's trace: gRPC metadata first, then the checked request.
        let parent = crate::otel::extract_parent(request.metadata(), request.get_ref());
        let span = telemetry::check_span();
        let _parent = crate::otel::adopt(&span, parent.as_ref());
        let _entered = span.enter();
        let outcome = self.shared.evaluate(request.get_ref());
        let dry_run = self.shared.dry_run(&outcome);
        let response = response::build(&outcome, &self.shared.config, dry_run);
        crate::otel::record_outcome(&span, &outcome, dry_run);
        telemetry::record_decision(&outcome, dry_run);
        crate::metrics::decision(&outcome);
        crate::shadow::compare(&self.shared, request.get_ref(), &outcome);
        Ok(Response::new(response))
    }
}

/// This project's `Explainer`: Explain and Status.
#[derive(Debug, Clone)]
pub struct ExplainService {
    shared: Arc<Shared>,
}

impl ExplainService {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The tonic service, with the decode limit applied.
    pub fn server(shared: Arc<Shared>) -> pb::explainer_server::ExplainerServer<Self> {
        let limit = decode_limit(&shared.config);
        pb::explainer_server::ExplainerServer::new(Self::new(shared))
            .max_decoding_message_size(limit)
    }
}

#[tonic::async_trait]
impl pb::explainer_server::Explainer for ExplainService {
    async fn explain(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let outcome = self.shared.evaluate(request.get_ref());
        Ok(Response::new(crate::explain::explain(&outcome)))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let store = self.shared.store.load();
        Ok(Response::new(self.shared.status.report(&store)))
    }
}
