//! Hot reload: file writes, Kubernetes ConfigMap symlink swaps and SIGHUP
//! replace the serving policy set; broken files never do, and concurrent
//! Checks never see a mix of two sets.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cedar_ext_authz::config::Config;
use cedar_ext_authz::policy::PolicyStore;
use cedar_ext_authz::reload;
use cedar_ext_authz::server::Shared;
use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;

fn schema() -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(repo.join("policies/schema.cedarschema")).unwrap()
}

/// Two permits named `<tag>1` and `<tag>2`: a decision names both or
/// neither of a set, so a mixed set would show up as mixed tags.
fn tagged(tag: &str) -> String {
    format!(
        "@id(\"{tag}1\")\npermit(principal, action, resource);\n\
         @id(\"{tag}2\")\npermit(principal, action, resource);\n"
    )
}

fn write_set(dir: &Path, policies: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("schema.cedarschema"), schema()).unwrap();
    // Write then rename, as an editor or `kubectl cp` would not: the
    // watcher must cope with both, so the test uses the atomic form.
    let tmp = dir.join(".policies.cedar.tmp");
    std::fs::write(&tmp, policies).unwrap();
    std::fs::rename(tmp, dir.join("policies.cedar")).unwrap();
}

fn shared_for(dir: &Path) -> Arc<Shared> {
    let yaml = format!("policy_dir: {}\n", dir.display());
    let config = Config::parse(&yaml, Path::new("t.yaml"), dir).unwrap();
    let store = PolicyStore::load(&config.policy_dir, &[]).unwrap();
    Shared::new(config, store)
}

fn request() -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/x".into(),
                    host: "h.test".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn policies_of(shared: &Shared) -> Vec<String> {
    shared.evaluate(&request()).decision.policies
}

async fn wait_for(shared: &Shared, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while policies_of(shared) != want {
        assert!(
            Instant::now() < deadline,
            "still {:?}, want {want:?}",
            policies_of(shared)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn in_place_write_is_picked_up_by_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), &tagged("a"));
    let shared = shared_for(dir.path());
    let _watcher = reload::spawn(shared.clone()).unwrap();
    write_set(dir.path(), &tagged("b"));
    wait_for(&shared, &["b1", "b2"]).await;
}

#[tokio::test]
async fn broken_file_keeps_the_last_good_set_and_is_reported_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), &tagged("a"));
    let shared = shared_for(dir.path());
    for broken in [
        "not_a_valid_permit(principal, action, resource);",
        "@id(\"half\")\npermit(principal, act",
    ] {
        write_set(dir.path(), broken);
        assert!(!reload::reload(&shared).await);
        assert_eq!(policies_of(&shared), ["a1", "a2"]);
        let error = shared.status.last_error().expect("failure is reported");
        assert!(error.contains("policies.cedar:"), "{error}");
    }
    std::fs::write(dir.path().join("entities.json"), "{}").unwrap();
    write_set(dir.path(), &tagged("b"));
    assert!(
        !reload::reload(&shared).await,
        "entities that are not an array are refused"
    );
    assert_eq!(policies_of(&shared), ["a1", "a2"]);
    std::fs::remove_file(dir.path().join("entities.json")).unwrap();
    assert!(reload::reload(&shared).await);
    assert_eq!(policies_of(&shared), ["b1", "b2"]);
    assert!(shared.status.last_error().is_none());
}

#[tokio::test]
async fn vanished_folder_keeps_serving_and_is_reported() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("policies");
    write_set(&dir, &tagged("a"));
    let shared = shared_for(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!reload::reload(&shared).await);
    assert_eq!(policies_of(&shared), ["a1", "a2"]);
    assert!(shared.status.last_error().is_some());
}

#[tokio::test]
async fn route_table_reloads_with_the_policies_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let policies = "@id(\"get\")\npermit(principal, action == Action::\"GET\", resource);\n\
                    @id(\"doc\")\npermit(principal, action == Action::\"document.read\", resource);\n";
    write_set(dir.path(), policies);
    let shared = shared_for(dir.path());
    let _watcher = reload::spawn(shared.clone()).unwrap();
    assert_eq!(policies_of(&shared), ["get"]);

    // A route makes `GET /x` the named action: the watcher picks it up.
    let routes = dir.path().join("routes.yaml");
    let route = "routes:\n  - path: /x\n    action: document.read\n";
    std::fs::write(&routes, route).unwrap();
    wait_for(&shared, &["doc"]).await;
    let version = shared.store.load().version.clone();

    // A route to an action the schema lacks is refused, with its file.
    std::fs::write(&routes, "routes:\n  - path: /x\n    action: nope\n").unwrap();
    assert!(!reload::reload(&shared).await);
    assert_eq!(policies_of(&shared), ["doc"]);
    assert_eq!(shared.store.load().version, version);
    let error = shared.status.last_error().expect("failure is reported");
    assert!(error.contains("nope"), "{error}");

    // An unknown key is refused with the file and line.
    std::fs::write(&routes, "routes:\n  - path: /x\n    actoin: GET\n").unwrap();
    assert!(!reload::reload(&shared).await);
    let error = shared.status.last_error().expect("failure is reported");
    assert!(error.contains("routes.yaml:3"), "{error}");
    assert_eq!(policies_of(&shared), ["doc"]);

    std::fs::remove_file(&routes).unwrap();
    assert!(reload::reload(&shared).await);
    assert_eq!(policies_of(&shared), ["get"]);
}

/// Lays out a folder the way the kubelet mounts a ConfigMap.
fn configmap_swap(root: &Path, generation: u32, policies: &str) {
    let data = root.join(format!("..2026_{generation}"));
    write_set(&data, policies);
    let tmp = root.join("..data_tmp");
    std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
    std::fs::rename(&tmp, root.join("..data")).unwrap();
    for name in ["schema.cedarschema", "policies.cedar"] {
        let link = root.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(PathBuf::from("..data").join(name), &link).unwrap();
        }
    }
}

#[tokio::test]
async fn configmap_symlink_swap_is_picked_up() {
    let root = tempfile::tempdir().unwrap();
    configmap_swap(root.path(), 1, &tagged("a"));
    let shared = shared_for(root.path());
    assert_eq!(policies_of(&shared), ["a1", "a2"]);
    let _watcher = reload::spawn(shared.clone()).unwrap();
    configmap_swap(root.path(), 2, &tagged("b"));
    wait_for(&shared, &["b1", "b2"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checks_during_reloads_never_fail_or_mix_sets() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), &tagged("a"));
    let shared = shared_for(dir.path());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (shared, stop) = (shared.clone(), stop.clone());
        clients.push(tokio::task::spawn_blocking(move || {
            let mut seen = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let outcome = shared.evaluate(&request());
                assert!(outcome.decision.is_allow(), "failed check: {outcome:?}");
                let p = &outcome.decision.policies;
                let tag = &p[0][..1];
                assert!(
                    p.len() == 2 && p.iter().all(|id| id.starts_with(tag)),
                    "mixed set {p:?}"
                );
                seen += 1;
            }
            seen
        }));
    }
    for round in 0..20 {
        let tag = if round % 2 == 0 { "b" } else { "a" };
        write_set(dir.path(), &tagged(tag));
        assert!(reload::reload(&shared).await);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        assert!(client.await.unwrap() > 0);
    }
}

#[test]
fn sighup_reloads_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), &tagged("a"));
    let config = dir.path().join("config.yaml");
    // No watcher and no poll: only SIGHUP can cause the reload.
    let yaml = "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\npolicy_dir: .\n\
                shutdown_drain_ms: 50\nreload:\n  watch: false\n  poll_interval_ms: 0\n";
    std::fs::write(&config, yaml).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cedar-ext-authz"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push(line);
        }
    });
    let wait = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if lines.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` in {:?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait("\"serving\"");
    write_set(dir.path(), &tagged("b"));
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    wait("policies reloaded");
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
