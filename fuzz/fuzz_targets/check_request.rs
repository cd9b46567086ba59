//! Arbitrary bytes decoded as a CheckRequest, decided with the bundled
//! config and policies (loaded once), the response built as Check builds
//! it.
//!
//! Besides "never panics": the answer is OK, PERMISSION_DENIED or
//! UNAUTHENTICATED, and a deny of an HTTP request always carries an HTTP
//! status from 400 to 599.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use cedar_ext_authz::config::Config;
use cedar_ext_authz::policy::PolicyStore;
use cedar_ext_authz::request::Kind;
use cedar_ext_authz::{authorize, response};
use envoy_types::ext_authz::v3::pb::{CheckRequest, HttpResponse};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn bundled() -> &'static (Config, PolicyStore) {
    static BUNDLED: OnceLock<(Config, PolicyStore)> = OnceLock::new();
    BUNDLED.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let config = Config::load(&root.join("config/cedar-ext-authz.yaml"))
            .expect("the bundled config loads");
        let store = PolicyStore::load(&config.policy_dir, &config.request.routes)
            .expect("the bundled policies load");
        (config, store)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(check) = CheckRequest::decode(data) else {
        return;
    };
    let (config, store) = bundled();
    let outcome = authorize::evaluate(&check, data.len(), config, store);
    let network = outcome
        .facts
        .as_ref()
        .is_some_and(|f| f.kind == Kind::Network);
    let answer = response::build(&outcome, config, false);
    let code = answer.status.as_ref().map(|s| s.code);
    assert!(matches!(code, Some(0 | 7 | 16)), "gRPC code {code:?}");
    match answer.http_response {
        None => assert!(network, "an HTTP check answered without an HTTP part"),
        Some(HttpResponse::DeniedResponse(denied)) => {
            let status = denied.status.map_or(0, |s| s.code);
            assert!(
                (400..=599).contains(&status),
                "deny with HTTP status {status}"
            );
        }
        Some(_) => assert_eq!(code, Some(0), "an allow with a deny code"),
    }
});
