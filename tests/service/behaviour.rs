//! The decision contract beyond the field cases: deny annotations, dry-run,
//! shadow policies, Explain and the policy test runner.

use std::path::Path;

use cedar_ext_authz::config::Config;
use cedar_ext_authz::policy::PolicyStore;
use cedar_ext_authz::server::pb::explainer_server::Explainer;
use cedar_ext_authz::server::{pb, CheckService, ExplainService, Shared};
use envoy_types::ext_authz::v3::pb::{Authorization, HttpResponse};

use crate::fixture::*;

#[tokio::test]
async fn forbid_annotation_sets_status_and_message_without_naming_the_policy() {
    let f = Fixture::new(
        r#"permit(principal, action, resource);
           @id("step-up")
           @http_status("401")
           @message("please sign in again with a second factor")
           forbid(principal, action == Action::"DELETE", resource);"#,
    );
    let response = f
        .check(http("DELETE", "/x", &[("remote-user", "bob")]))
        .await;
    assert_eq!(verdict(&response), UNAUTHENTICATED);
    let Some(HttpResponse::DeniedResponse(denied)) = response.http_response else {
        panic!("no denied response");
    };
    assert!(denied.body.contains("second factor"), "{}", denied.body);
    assert!(!denied.body.contains("step-up"), "policy ids stay internal");
}

#[tokio::test]
async fn global_dry_run_allows_and_reports_the_would_be_deny() {
    let f = Fixture::with_config(
        "forbid(principal, action, resource);",
        "decision:\n  dry_run: true\n  dry_run_header: true\n",
    );
    let response = f.check(http("GET", "/x", &[("remote-user", "bob")])).await;
    assert_eq!(verdict(&response), ALLOW);
    let Some(HttpResponse::OkResponse(ok)) = response.http_response else {
        panic!("dry-run must allow");
    };
    let header = ok.response_headers_to_add[0].header.as_ref().unwrap();
    assert_eq!(
        (header.key.as_str(), header.value.as_str()),
        ("x-cedar-dry-run", "deny 403")
    );
}

#[tokio::test]
async fn per_route_dry_run_comes_only_from_context_extensions() {
    let f = Fixture::new("forbid(principal, action, resource);");
    let mut request = http(
        "GET",
        "/x",
        &[("remote-user", "bob"), ("cedar_dry_run", "true")],
    );
    assert_eq!(
        verdict(&f.check(request.clone()).await),
        DENY,
        "a header cannot ask for dry-run"
    );
    let attrs = request.attributes.as_mut().unwrap();
    attrs
        .context_extensions
        .insert("cedar_dry_run".into(), "true".into());
    assert_eq!(verdict(&f.check(request).await), ALLOW);
}

#[tokio::test]
async fn shadow_policies_are_evaluated_but_never_enforced() {
    let enforced = tempfile::tempdir().unwrap();
    write_policies(
        enforced.path(),
        &schema(),
        "permit(principal, action, resource);",
        None,
    );
    let shadow = tempfile::tempdir().unwrap();
    write_policies(
        shadow.path(),
        &schema(),
        "forbid(principal, action, resource);",
        None,
    );
    let yaml = format!(
        "policy_dir: {}\nshadow_policy_dir: {}\n",
        enforced.path().display(),
        shadow.path().display()
    );
    let config = Config::parse(&yaml, Path::new("t.yaml"), enforced.path()).unwrap();
    let store = PolicyStore::load(enforced.path(), &[]).unwrap();
    let shadow_store = PolicyStore::load(shadow.path(), &[]).unwrap();
    let service = CheckService::new(Shared::with_shadow(config, store, Some(shadow_store)));
    let before = cedar_ext_authz::metrics::render();
    let response = service
        .check(tonic::Request::new(http("GET", "/x", &[])))
        .await
        .unwrap();
    assert_eq!(verdict(&response.into_inner()), ALLOW);
    let after = cedar_ext_authz::metrics::render();
    let count = |text: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("cedar_ext_authz_shadow_comparisons_total{result=\"disagree\"}")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(count(&after) > count(&before), "disagreement counted");
}

#[tokio::test]
async fn explain_runs_the_check_path_and_shows_the_mapping() {
    let f = Fixture::new(r#"@id("staff") permit(principal in Group::"staff", action, resource);"#);
    let explain = ExplainService::new(f.shared.clone());
    let request = http(
        "get",
        "/a/../b?q=1",
        &[("remote-user", "bob\"jr"), ("remote-groups", "staff")],
    );
    let e = explain
        .explain(tonic::Request::new(request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((e.decision.as_str(), e.http_status), ("allow", 200));
    assert_eq!(e.determining_policies, ["staff"]);
    let principal: serde_json::Value = serde_json::from_str(&e.principal).unwrap();
    assert_eq!(
        principal,
        serde_json::json!({"type": "User", "id": "bob\"jr"})
    );
    let resource: serde_json::Value = serde_json::from_str(&e.resource).unwrap();
    assert_eq!(resource["id"], "/b");
    let context: serde_json::Value = serde_json::from_str(&e.context_json).unwrap();
    assert_eq!(context["query"]["q"], "1");
    assert_eq!(context["method"], "GET");
    let status = explain
        .status(tonic::Request::new(pb::StatusRequest {}))
        .await
        .unwrap();
    assert_eq!(status.into_inner().policy_set_version, e.policy_set_version);
}

#[test]
fn policy_test_runner_reports_a_wrong_expectation() {
    let f = Fixture::new(r#"@id("all") permit(principal, action, resource);"#);
    let cases = tempfile::tempdir().unwrap();
    let yaml = "cases:\n  - name: expects deny\n    request: { path: /x }\n    expect: { decision: deny, status: 403 }\n  - name: expects allow\n    request: { path: /x }\n    expect: { decision: allow, policies: [all] }\n";
    std::fs::write(cases.path().join("c.yaml"), yaml).unwrap();
    let store = f.shared.store.load();
    let summary =
        cedar_ext_authz::policy_tests::run(cases.path(), &f.shared.config, &store).unwrap();
    assert_eq!((summary.passed, summary.failed), (1, 1));
    assert!(
        summary.report.contains("FAIL  c.yaml: expects deny"),
        "{}",
        summary.report
    );
    assert!(
        summary.report.contains("expected Deny 403"),
        "{}",
        summary.report
    );
}

#[tokio::test]
async fn header_limits_deny_with_431_not_an_error() {
    let f = Fixture::new("permit(principal, action, resource);");
    let big = "x".repeat(20_000);
    let response = f.check(http("GET", "/x", &[("x-big", &big)])).await;
    assert_eq!(verdict(&response), (7, 431));
    let many: Vec<(String, String)> = (0..200).map(|i| (format!("h{i}"), "v".into())).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(verdict(&f.check(http("GET", "/x", &refs)).await), (7, 431));
}
