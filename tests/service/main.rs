//! Service tests: Envoy's Check handler called directly with built
//! CheckRequests, against real policy sets written to a temporary folder.
//!
//! `field_cases` holds one test module per kind of fault in the shared
//! field-case list; `behaviour` covers the rest of the decision contract.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod behaviour;
mod field_cases;
mod fixture;
