//! The policy cases shipped in `policies/tests/`, run by `cargo test`
//! through the same runner as `cedar-ext-authz test`: every YAML file of
//! the folder is picked up, so a new case file needs no code.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::path::Path;

use cedar_ext_authz::config::Config;
use cedar_ext_authz::policy::PolicyStore;
use cedar_ext_authz::policy_tests;

#[test]
fn every_shipped_policy_case_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = Config::load(&root.join("config/cedar-ext-authz.yaml")).unwrap();
    let store = PolicyStore::load(&config.policy_dir, &config.request.routes).unwrap();
    let dir = root.join("policies/tests");
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            let path = e.as_ref().unwrap().path();
            path.extension().is_some_and(|x| x == "yaml" || x == "yml")
        })
        .count();
    assert!(files > 0, "no case files in {}", dir.display());
    let summary = policy_tests::run(&dir, &config, &store).unwrap();
    assert!(
        summary.failed == 0 && summary.passed > 0,
        "{} failed:\n{}",
        summary.failed,
        summary.report
    );
}
