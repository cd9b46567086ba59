//! One function from a CheckRequest to an [`Outcome`]: read the request,
//! resolve identity, map to Cedar, decide.
//!
//! Check, Explain, the `check` command and the policy test runner all call
//! [`evaluate`], so what is explained or tested is exactly what is served.
//! The path does no I/O and takes no lock: the policy store is passed in.

use std::time::Instant;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;

use crate::config::Config;
use crate::decision::{self, Decision};
use crate::identity::{self, Identity, Principal};
use crate::mapping::{self, CedarRequest};
use crate::policy::PolicyStore;
use crate::request::{RawSummary, Refusal, RequestFacts};

/// Everything known about one decision, for the response, the log, the
/// span and Explain.
#[derive(Debug)]
pub struct Outcome {
    pub facts: Option<RequestFacts>,
    pub identity: Option<Identity>,
    pub cedar: Option<CedarRequest>,
    /// Why the request was refused before Cedar ran, if it was.
    pub refusal: Option<String>,
    /// What the log can show of a refused request whose facts could not
    /// be read: the raw, unnormalised values, shortened.
    pub raw: Option<RawSummary>,
    /// Why mapping failed, if it did (an internal fault; denies).
    pub fault: Option<String>,
    pub decision: Decision,
    /// Version of the policy set that decided.
    pub version: String,
    /// Time spent from reading the request to the decision.
    pub micros: u64,
}

/// Decides one CheckRequest. Never fails: every problem is a deny.
pub fn evaluate(
    check: &CheckRequest,
    encoded_len: usize,
    config: &Config,
    store: &PolicyStore,
) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        facts: None,
        identity: None,
        cedar: None,
        refusal: None,
        raw: None,
        fault: None,
        decision: Decision::internal(),
        version: store.version.clone(),
        micros: 0,
    };
    if let Err(refusal) = run(check, encoded_len, config, store, &mut outcome) {
        outcome.decision = Decision::refused(refusal.http_status(), "request refused");
        outcome.refusal = Some(refusal.to_string());
        if outcome.facts.is_none() {
            outcome.raw = Some(RawSummary::of(check));
        }
    }
    outcome.micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    outcome
}

fn run(
    check: &CheckRequest,
    encoded_len: usize,
    config: &Config,
    store: &PolicyStore,
    outcome: &mut Outcome,
) -> Result<(), Refusal> {
    let limit = config.request.max_request_bytes;
    if encoded_len > limit {
        return Err(Refusal::TooLarge {
            size: encoded_len,
            limit,
        });
    }
    let facts = outcome
        .facts
        .insert(RequestFacts::read(check, &config.request)?);
    let identity = identity::resolve(
        &config.identity,
        &facts.source_principal,
        &facts.headers,
        facts.metadata.as_ref(),
    )?;
    let identity = outcome.identity.insert(identity);
    let cedar = match mapping::map(facts, identity, &config.request, store) {
        Ok(cedar) => outcome.cedar.insert(cedar),
        Err(fault) => {
            // Fail closed: a request we cannot express is denied.
            outcome.fault = Some(fault.to_string());
            return Ok(());
        }
    };
    // 401 asks a browser or client to sign in; a TCP check has no one to ask.
    let anonymous = identity.principal == Principal::Anonymous && facts.http.is_some();
    outcome.decision = decision::decide(cedar, store, anonymous, &config.decision);
    Ok(())
}
