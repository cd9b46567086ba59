#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! The deployment manifests are checked the way a cluster would see them.
//!
//! `kubectl kustomize` renders `k8s/` and every overlay (kubectl must be
//! installed: a missing kubectl fails these tests, it does not skip them).
//! Every rendered document is deserialized into its k8s-openapi type with
//! unknown fields reported by `serde_ignored`, so a misspelt or misplaced
//! key fails here instead of being silently dropped by the API server. The
//! objects are then cross-checked against each other (ports, probes,
//! selectors, ConfigMap names and keys, the server's config), and the Istio
//! files, the policy folder and the Dockerfile against the rendered objects.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
    sync::OnceLock,
};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{ConfigMap, Container, Namespace, PodSpec, Service, ServiceAccount},
        networking::v1::NetworkPolicy,
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
    Resource,
};
use serde::{de::DeserializeOwned, Deserialize};
use serde_yaml_ng::Value;

const GRPC_PORT: i32 = 9191;
const ADMIN_PORT: i32 = 9192;
const CONFIG_MAP_CONFIG: &str = "cedar-ext-authz-config";
const CONFIG_MAP_POLICIES: &str = "cedar-ext-authz-policies";
const ISTIO_PROVIDER: &str = "cedar-ext-authz";

/// Identity headers the server reads, per preset (src/identity.rs): the
/// gateway must strip every one of them before authentication runs.
const PRESET_HEADERS: &[(&str, &[&str])] = &[
    (
        "authelia",
        &[
            "remote-user",
            "remote-groups",
            "remote-email",
            "remote-name",
        ],
    ),
    (
        "authentik",
        &[
            "x-authentik-username",
            "x-authentik-groups",
            "x-authentik-email",
            "x-authentik-name",
            "x-authentik-uid",
            "x-authentik-entitlements",
        ],
    ),
    (
        "oauth2-proxy",
        &[
            "x-forwarded-user",
            "x-forwarded-groups",
            "x-forwarded-email",
            "x-forwarded-preferred-username",
        ],
    ),
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------
// Rendering and strict parsing
// ---------------------------------------------------------------------------

/// Every object of one kustomize rendering, typed.
#[derive(Default)]
struct Objects {
    namespaces: Vec<Namespace>,
    service_accounts: Vec<ServiceAccount>,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    config_maps: Vec<ConfigMap>,
    pdbs: Vec<PodDisruptionBudget>,
    hpas: Vec<HorizontalPodAutoscaler>,
    network_policies: Vec<NetworkPolicy>,
}

struct Rendering {
    /// Kustomization folder, relative to the repository.
    target: String,
    objects: Objects,
}

/// The kustomizations that must render: the default one and every overlay.
fn targets() -> Vec<String> {
    let mut targets = vec!["k8s".to_owned(), "k8s/base".to_owned()];
    let overlays = repo().join("k8s/overlays");
    let mut found: Vec<String> = std::fs::read_dir(&overlays)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", overlays.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("kustomization.yaml").is_file())
        .map(|path| {
            format!(
                "k8s/overlays/{}",
                path.file_name().unwrap().to_string_lossy()
            )
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "k8s/overlays/ has no overlay");
    targets.extend(found);
    targets
}

/// Runs `kubectl kustomize` on a folder of the repository.
fn kustomize(target: &str) -> String {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join(target))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `kubectl kustomize {target}` ({e}); kubectl is required by these tests"
            )
        });
    assert!(
        output.status.success(),
        "`kubectl kustomize {target}` failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Splits a YAML stream into its non-empty documents.
fn documents(text: &str, what: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: invalid YAML: {e}")))
        .filter(|value| !value.is_null())
        .collect()
}

/// Deserializes into `T`, failing on any field that `T` does not have.
fn strict<T: DeserializeOwned + Resource>(value: Value, what: &str) -> Result<T, String> {
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if api_version != T::API_VERSION {
        return Err(format!(
            "{what}: apiVersion {api_version:?}, expected {:?}",
            T::API_VERSION
        ));
    }
    let mut unknown = Vec::new();
    let typed = serde_ignored::deserialize(value, |path| unknown.push(path.to_string()))
        .map_err(|e| format!("{what}: not a valid {}: {e}", T::KIND))?;
    if unknown.is_empty() {
        Ok(typed)
    } else {
        Err(format!("{what}: unknown fields {unknown:?}"))
    }
}

fn parse_rendering(target: &str, text: &str) -> Result<Objects, String> {
    let mut objects = Objects::default();
    for value in documents(text, target) {
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let what = format!("{target}: {kind}/{name}");
        match kind.as_str() {
            "Namespace" => objects.namespaces.push(strict(value, &what)?),
            "ServiceAccount" => objects.service_accounts.push(strict(value, &what)?),
            "Deployment" => objects.deployments.push(strict(value, &what)?),
            "Service" => objects.services.push(strict(value, &what)?),
            "ConfigMap" => objects.config_maps.push(strict(value, &what)?),
            "PodDisruptionBudget" => objects.pdbs.push(strict(value, &what)?),
            "HorizontalPodAutoscaler" => objects.hpas.push(strict(value, &what)?),
            "NetworkPolicy" => objects.network_policies.push(strict(value, &what)?),
            other => return Err(format!("{what}: unexpected kind `{other}`")),
        }
    }
    Ok(objects)
}

/// All renderings, made once for the whole test binary.
fn renderings() -> &'static [Rendering] {
    static RENDERINGS: OnceLock<Vec<Rendering>> = OnceLock::new();
    RENDERINGS.get_or_init(|| {
        targets()
            .into_iter()
            .map(|target| {
                let text = kustomize(&target);
                let objects = parse_rendering(&target, &text).unwrap_or_else(|e| panic!("{e}"));
                Rendering { target, objects }
            })
            .collect()
    })
}

fn default_rendering() -> &'static Rendering {
    renderings().iter().find(|r| r.target == "k8s").unwrap()
}

// ---------------------------------------------------------------------------
// Accessors
// ---------------------------------------------------------------------------

fn only<'a, T>(items: &'a [T], what: &str, target: &str) -> &'a T {
    assert_eq!(items.len(), 1, "{target}: expected exactly one {what}");
    &items[0]
}

impl Rendering {
    fn deployment(&self) -> &Deployment {
        only(&self.objects.deployments, "Deployment", &self.target)
    }

    fn pod_spec(&self) -> &PodSpec {
        self.deployment()
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
    }

    fn pod_labels(&self) -> &BTreeMap<String, String> {
        let template = &self.deployment().spec.as_ref().unwrap().template;
        template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .unwrap()
    }

    fn container(&self) -> &Container {
        only(&self.pod_spec().containers, "container", &self.target)
    }

    fn service(&self) -> &Service {
        only(&self.objects.services, "Service", &self.target)
    }

    /// The rendered ConfigMap generated under `generator` (name + hash).
    fn config_map(&self, generator: &str) -> &ConfigMap {
        let matching: Vec<&ConfigMap> = self
            .objects
            .config_maps
            .iter()
            .filter(|cm| generated_from(cm.metadata.name.as_deref().unwrap(), generator))
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{}: ConfigMaps generated as {generator}",
            self.target
        );
        matching[0]
    }

    /// The server's config.yaml, as rendered into its ConfigMap.
    fn server_config(&self) -> Value {
        let data = self.config_map(CONFIG_MAP_CONFIG).data.as_ref().unwrap();
        let text = data
            .get("config.yaml")
            .expect("config ConfigMap has config.yaml");
        serde_yaml_ng::from_str(text).unwrap()
    }
}

/// True if `name` is `generator` plus kustomize's `-<hash>` suffix.
fn generated_from(name: &str, generator: &str) -> bool {
    name.strip_prefix(generator)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hash| hash.len() == 10 && hash.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let exact = selector.match_labels.as_ref().is_none_or(|wanted| {
        wanted
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
    });
    let expressions = selector.match_expressions.as_ref().is_none_or(|exprs| {
        exprs.iter().all(|expr| {
            let values = expr.values.clone().unwrap_or_default();
            let value = labels.get(&expr.key);
            match expr.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("unknown selector operator {other}"),
            }
        })
    });
    let non_empty = selector
        .match_labels
        .as_ref()
        .is_some_and(|m| !m.is_empty())
        || selector
            .match_expressions
            .as_ref()
            .is_some_and(|m| !m.is_empty());
    non_empty && exact && expressions
}

/// The container port a Service targetPort or probe port designates.
fn resolve_port(container: &Container, port: &IntOrString) -> Option<i32> {
    let ports = container.ports.as_deref().unwrap_or_default();
    match port {
        IntOrString::Int(n) => ports
            .iter()
            .find(|p| p.container_port == *n)
            .map(|p| p.container_port),
        IntOrString::String(name) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port),
    }
}

fn socket_port(addr: &str) -> i32 {
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(-1)
}

fn yaml_str<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .and_then(Value::as_str)
}

// ---------------------------------------------------------------------------
// The parser itself
// ---------------------------------------------------------------------------

#[test]
fn strict_parsing_rejects_unknown_fields_and_wrong_api_versions() {
    let misplaced = "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports:\n  - port: 1\n    appProtocl: grpc\n";
    let value = documents(misplaced, "sample").remove(0);
    let message = strict::<Service>(value, "sample").unwrap_err();
    assert!(message.contains("spec.?.ports.?.0.appProtocl"), "{message}");

    let wrong_version =
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: x}\n";
    let value = documents(wrong_version, "sample").remove(0);
    assert!(strict::<PodDisruptionBudget>(value, "sample").is_err());

    let unknown_kind = "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n";
    let message = parse_rendering("sample", unknown_kind).err().unwrap();
    assert!(message.contains("unexpected kind `Secret`"), "{message}");
}

// ---------------------------------------------------------------------------
// Kubernetes objects
// ---------------------------------------------------------------------------

#[test]
fn every_kustomization_renders_known_kinds_without_unknown_fields() {
    let targets: Vec<&str> = renderings().iter().map(|r| r.target.as_str()).collect();
    assert!(targets.contains(&"k8s/overlays/production"), "{targets:?}");
    for rendering in renderings() {
        let o = &rendering.objects;
        let t = &rendering.target;
        assert_eq!(o.namespaces.len(), 1, "{t}: Namespace");
        assert_eq!(o.service_accounts.len(), 1, "{t}: ServiceAccount");
        assert_eq!(o.deployments.len(), 1, "{t}: Deployment");
        assert_eq!(o.services.len(), 1, "{t}: Service");
        assert_eq!(
            o.config_maps.len(),
            2,
            "{t}: ConfigMaps (config and policies)"
        );
        assert_eq!(o.pdbs.len(), 1, "{t}: PodDisruptionBudget");
        assert_eq!(o.hpas.len(), 1, "{t}: HorizontalPodAutoscaler");
        assert_eq!(o.network_policies.len(), 1, "{t}: NetworkPolicy");
    }
}

#[test]
fn default_rendering_is_the_base() {
    assert_eq!(kustomize("k8s"), kustomize("k8s/base"));
}

#[test]
fn every_object_lives_in_the_rendered_namespace_with_standard_labels() {
    for r in renderings() {
        let namespace = r.objects.namespaces[0].metadata.name.clone().unwrap();
        let o = &r.objects;
        let metas = o
            .service_accounts
            .iter()
            .map(|x| &x.metadata)
            .chain(o.deployments.iter().map(|x| &x.metadata))
            .chain(o.services.iter().map(|x| &x.metadata))
            .chain(o.config_maps.iter().map(|x| &x.metadata))
            .chain(o.pdbs.iter().map(|x| &x.metadata))
            .chain(o.hpas.iter().map(|x| &x.metadata))
            .chain(o.network_policies.iter().map(|x| &x.metadata));
        for meta in metas {
            let name = meta.name.as_deref().unwrap();
            assert_eq!(
                meta.namespace.as_deref(),
                Some(namespace.as_str()),
                "{}: {name}",
                r.target
            );
            let labels = meta.labels.clone().unwrap_or_default();
            for key in ["app.kubernetes.io/name", "app.kubernetes.io/part-of"] {
                assert_eq!(
                    labels.get(key).map(String::as_str),
                    Some("cedar-ext-authz"),
                    "{}: {name} label {key}",
                    r.target
                );
            }
        }
    }
}

#[test]
fn probes_container_ports_and_service_ports_agree() {
    for r in renderings() {
        let t = &r.target;
        let container = r.container();
        let ports = container.ports.as_deref().unwrap();
        let by_name: BTreeMap<&str, i32> = ports
            .iter()
            .map(|p| (p.name.as_deref().unwrap(), p.container_port))
            .collect();
        assert_eq!(
            by_name.get("grpc"),
            Some(&GRPC_PORT),
            "{t}: container port grpc"
        );
        assert_eq!(
            by_name.get("http-admin"),
            Some(&ADMIN_PORT),
            "{t}: container port http-admin"
        );

        // Liveness and readiness are native gRPC probes (grpc.health.v1) on
        // the gRPC port; a startup probe, if any, too.
        for (kind, probe) in [
            ("liveness", container.liveness_probe.as_ref()),
            ("readiness", container.readiness_probe.as_ref()),
            ("startup", container.startup_probe.as_ref()),
        ] {
            let Some(probe) = probe else {
                assert_eq!(kind, "startup", "{t}: {kind} probe missing");
                continue;
            };
            let grpc = probe
                .grpc
                .as_ref()
                .unwrap_or_else(|| panic!("{t}: {kind} probe is not gRPC"));
            assert_eq!(grpc.port, GRPC_PORT, "{t}: {kind} probe port");
            assert!(probe.http_get.is_none() && probe.tcp_socket.is_none() && probe.exec.is_none());
        }

        let service = r.service();
        let spec = service.spec.as_ref().unwrap();
        assert_eq!(
            spec.type_.as_deref().unwrap_or("ClusterIP"),
            "ClusterIP",
            "{t}: Service type"
        );
        let service_ports = spec.ports.as_deref().unwrap();
        for (name, number, app_protocol) in [
            ("grpc", GRPC_PORT, "grpc"),
            ("http-admin", ADMIN_PORT, "http"),
        ] {
            let port = service_ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("{t}: Service has no port named {name}"));
            assert_eq!(port.port, number, "{t}: Service port {name}");
            assert_eq!(
                port.app_protocol.as_deref(),
                Some(app_protocol),
                "{t}: appProtocol of {name}"
            );
            let target = port
                .target_port
                .clone()
                .unwrap_or(IntOrString::Int(port.port));
            assert_eq!(
                resolve_port(container, &target),
                Some(number),
                "{t}: targetPort of {name}"
            );
        }

        // NetworkPolicy ports name real container ports: gRPC and admin.
        let policy = r.objects.network_policies[0].spec.as_ref().unwrap();
        let mut admitted = BTreeSet::new();
        for rule in policy.ingress.as_deref().unwrap() {
            for port in rule.ports.as_deref().unwrap() {
                let resolved = resolve_port(container, port.port.as_ref().unwrap());
                admitted
                    .insert(resolved.unwrap_or_else(|| panic!("{t}: NetworkPolicy port {port:?}")));
            }
        }
        assert_eq!(
            admitted,
            BTreeSet::from([GRPC_PORT, ADMIN_PORT]),
            "{t}: NetworkPolicy ports"
        );
    }
}

#[test]
fn volumes_name_rendered_config_maps_and_existing_keys() {
    for r in renderings() {
        let t = &r.target;
        let names: BTreeSet<&str> = r
            .objects
            .config_maps
            .iter()
            .map(|cm| cm.metadata.name.as_deref().unwrap())
            .collect();
        for generator in [CONFIG_MAP_CONFIG, CONFIG_MAP_POLICIES] {
            r.config_map(generator); // exactly one, with a hash suffix
        }
        let volumes = r.pod_spec().volumes.as_deref().unwrap();
        let mut used = BTreeSet::new();
        for volume in volumes {
            let source = volume
                .config_map
                .as_ref()
                .unwrap_or_else(|| panic!("{t}: volume {}", volume.name));
            assert!(
                names.contains(source.name.as_str()),
                "{t}: volume {} names missing ConfigMap {}",
                volume.name,
                source.name
            );
            used.insert(source.name.as_str());
            let cm = r
                .objects
                .config_maps
                .iter()
                .find(|cm| cm.metadata.name.as_deref() == Some(&source.name))
                .unwrap();
            let data = cm.data.clone().unwrap_or_default();
            for item in source.items.as_deref().unwrap_or_default() {
                assert!(
                    data.contains_key(&item.key),
                    "{t}: ConfigMap {} has no key {}",
                    source.name,
                    item.key
                );
            }
        }
        assert_eq!(used, names, "{t}: every rendered ConfigMap is mounted");

        let volume_names: BTreeSet<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
        for mount in r.container().volume_mounts.as_deref().unwrap() {
            assert!(
                volume_names.contains(mount.name.as_str()),
                "{t}: mount of unknown volume {}",
                mount.name
            );
            assert_eq!(
                mount.read_only,
                Some(true),
                "{t}: mount {} must be read-only",
                mount.name
            );
            // subPath mounts never see ConfigMap updates: no hot reload.
            assert!(
                mount.sub_path.is_none() && mount.sub_path_expr.is_none(),
                "{t}: mount {} uses subPath",
                mount.name
            );
        }
    }
}

#[test]
fn config_flag_and_policy_dir_point_into_the_mounted_config_maps() {
    for r in renderings() {
        let t = &r.target;
        let container = r.container();
        let argv: Vec<&str> = container
            .command
            .iter()
            .chain(container.args.iter())
            .flatten()
            .map(String::as_str)
            .collect();
        let serve = argv
            .iter()
            .position(|a| *a == "serve")
            .unwrap_or_else(|| panic!("{t}: no `serve` in {argv:?}"));
        let flag = argv
            .iter()
            .position(|a| *a == "--config")
            .unwrap_or_else(|| panic!("{t}: no --config in {argv:?}"));
        assert!(serve < flag, "{t}: --config must follow serve: {argv:?}");
        let config_path = argv[flag + 1];

        let volumes = r.pod_spec().volumes.as_deref().unwrap();
        let mount_of = |generator: &str| {
            let volume = volumes
                .iter()
                .find(|v| generated_from(&v.config_map.as_ref().unwrap().name, generator))
                .unwrap_or_else(|| panic!("{t}: no volume from {generator}"));
            let mount = container
                .volume_mounts
                .as_deref()
                .unwrap()
                .iter()
                .find(|m| m.name == volume.name)
                .unwrap_or_else(|| panic!("{t}: volume {} is not mounted", volume.name));
            (volume, mount.mount_path.trim_end_matches('/').to_owned())
        };

        let (config_volume, config_dir) = mount_of(CONFIG_MAP_CONFIG);
        let items = config_volume
            .config_map
            .as_ref()
            .unwrap()
            .items
            .clone()
            .unwrap_or_default();
        let file = items
            .iter()
            .find(|i| i.key == "config.yaml")
            .map_or("config.yaml", |i| i.path.as_str());
        assert_eq!(
            config_path,
            format!("{config_dir}/{file}"),
            "{t}: --config path"
        );

        let (_, policy_dir) = mount_of(CONFIG_MAP_POLICIES);
        let config = r.server_config();
        let configured = yaml_str(&config, &["policy_dir"]).unwrap();
        let configured = if configured.starts_with('/') {
            configured.trim_end_matches('/').to_owned()
        } else {
            format!("{config_dir}/{configured}")
        };
        assert_eq!(
            configured, policy_dir,
            "{t}: policy_dir vs the policies mount"
        );
    }
}

#[test]
fn server_config_listens_on_the_container_ports_of_all_interfaces() {
    for r in renderings() {
        let t = &r.target;
        let config = r.server_config();
        let listen = yaml_str(&config, &["listen"]).unwrap();
        let admin = yaml_str(&config, &["admin_listen"]).unwrap();
        assert_eq!(socket_port(listen), GRPC_PORT, "{t}: listen {listen}");
        assert_eq!(socket_port(admin), ADMIN_PORT, "{t}: admin_listen {admin}");
        // Loopback would make the pod unreachable and every probe fail.
        for addr in [listen, admin] {
            assert!(
                addr.starts_with("0.0.0.0:") || addr.starts_with("[::]:"),
                "{t}: {addr} is not all interfaces"
            );
        }
        let format = yaml_str(&config, &["log", "format"]).unwrap_or("json");
        assert!(
            ["json", "human"].contains(&format),
            "{t}: log.format {format}"
        );
    }
}

/// Overlays replace config.yaml whole; outside the documented knobs they
/// must stay the base's config, so the copies cannot drift apart.
#[test]
fn overlay_configs_differ_from_the_base_only_in_documented_knobs() {
    const KNOBS: &[(&str, &str)] = &[
        ("log", "format"),
        ("identity", "presets"),
        ("identity", "trusted_forwarders"),
        ("telemetry", "otlp_endpoint"),
    ];
    let without_knobs = |mut config: Value| {
        for (section, key) in KNOBS {
            if let Some(map) = config.get_mut(*section).and_then(Value::as_mapping_mut) {
                map.remove(*key);
            }
        }
        config
    };
    let base = without_knobs(default_rendering().server_config());
    for r in renderings() {
        assert_eq!(
            without_knobs(r.server_config()),
            base,
            "{}: config.yaml differs from k8s/base/config.yaml beyond {KNOBS:?}",
            r.target
        );
    }
}

#[test]
fn identity_headers_are_trusted_only_from_spiffe_forwarders() {
    for r in renderings() {
        let t = &r.target;
        let config = r.server_config();
        let identity = config.get("identity").unwrap();
        // Never shipped on: no manifest here has a proxy in front of the
        // sidecar that strips identity headers on every path.
        assert_eq!(
            identity
                .get("headers_stripped_by_proxy")
                .and_then(Value::as_bool),
            Some(false),
            "{t}: headers_stripped_by_proxy"
        );
        let forwarders = identity
            .get("trusted_forwarders")
            .and_then(Value::as_sequence)
            .unwrap();
        for forwarder in forwarders {
            let id = forwarder.as_str().unwrap();
            let path = id
                .strip_prefix("spiffe://")
                .and_then(|rest| rest.split_once('/'))
                .map(|(_, p)| p);
            let parts: Vec<&str> = path.unwrap_or_default().split('/').collect();
            assert!(
                parts.len() == 4
                    && parts[0] == "ns"
                    && parts[2] == "sa"
                    && parts.iter().all(|p| !p.is_empty()),
                "{t}: trusted forwarder {id} is not spiffe://<td>/ns/<ns>/sa/<sa>"
            );
        }
    }
}

#[test]
fn selectors_service_account_and_autoscaler_target_the_deployment() {
    for r in renderings() {
        let t = &r.target;
        let deployment = r.deployment();
        let spec = deployment.spec.as_ref().unwrap();
        let labels = r.pod_labels();
        assert!(
            selector_matches(&spec.selector, labels),
            "{t}: Deployment selector"
        );

        let service_selector = r.service().spec.as_ref().unwrap().selector.clone().unwrap();
        assert!(!service_selector.is_empty(), "{t}: empty Service selector");
        for (key, value) in &service_selector {
            assert_eq!(labels.get(key), Some(value), "{t}: Service selector {key}");
        }

        let pdb = r.objects.pdbs[0].spec.as_ref().unwrap();
        assert!(
            selector_matches(pdb.selector.as_ref().unwrap(), labels),
            "{t}: PDB selector"
        );
        assert_eq!(
            pdb.min_available,
            Some(IntOrString::Int(1)),
            "{t}: PDB minAvailable"
        );

        let policy = r.objects.network_policies[0].spec.as_ref().unwrap();
        assert!(
            selector_matches(policy.pod_selector.as_ref().unwrap(), labels),
            "{t}: NetworkPolicy podSelector"
        );

        for constraint in r.pod_spec().topology_spread_constraints.as_deref().unwrap() {
            let selector = constraint.label_selector.as_ref().unwrap();
            assert!(
                selector_matches(selector, labels),
                "{t}: topology spread selector"
            );
        }

        let hpa = r.objects.hpas[0].spec.as_ref().unwrap();
        let target = &hpa.scale_target_ref;
        assert_eq!(target.kind, "Deployment", "{t}: HPA target kind");
        assert_eq!(
            target.api_version.as_deref(),
            Some("apps/v1"),
            "{t}: HPA target apiVersion"
        );
        assert_eq!(
            Some(&target.name),
            deployment.metadata.name.as_ref(),
            "{t}: HPA target name"
        );
        let cpu = hpa.metrics.as_deref().unwrap().iter().any(|m| {
            m.resource
                .as_ref()
                .is_some_and(|res| res.name == "cpu" && res.target.average_utilization.is_some())
        });
        assert!(cpu, "{t}: HPA scales on CPU utilization");

        let replicas = spec.replicas.unwrap_or(1);
        assert!(replicas >= 2, "{t}: at least two replicas");
        assert_eq!(
            hpa.min_replicas,
            Some(replicas),
            "{t}: HPA minReplicas equals replicas"
        );
        assert!(hpa.max_replicas > replicas, "{t}: HPA has room to scale");

        let account = r.pod_spec().service_account_name.as_deref().unwrap();
        let accounts: Vec<&str> = r
            .objects
            .service_accounts
            .iter()
            .map(|s| s.metadata.name.as_deref().unwrap())
            .collect();
        assert!(
            accounts.contains(&account),
            "{t}: serviceAccountName {account} not in {accounts:?}"
        );
    }
}

#[test]
fn pods_run_locked_down_and_drain_gracefully() {
    for r in renderings() {
        let t = &r.target;
        let pod = r.pod_spec();
        let pod_security = pod.security_context.as_ref().unwrap();
        assert_eq!(
            pod_security.run_as_non_root,
            Some(true),
            "{t}: pod runAsNonRoot"
        );
        assert!(
            pod_security.run_as_user.is_some_and(|uid| uid > 0),
            "{t}: pod runAsUser numeric non-root"
        );
        let pod_seccomp = pod_security
            .seccomp_profile
            .as_ref()
            .map(|s| s.type_.as_str());
        assert_eq!(
            pod_seccomp,
            Some("RuntimeDefault"),
            "{t}: pod seccompProfile"
        );

        for container in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            let c = &container.name;
            let security = container.security_context.as_ref().unwrap();
            assert_eq!(
                security.allow_privilege_escalation,
                Some(false),
                "{t}/{c}: allowPrivilegeEscalation"
            );
            assert_eq!(
                security.read_only_root_filesystem,
                Some(true),
                "{t}/{c}: readOnlyRootFilesystem"
            );
            assert_ne!(security.privileged, Some(true), "{t}/{c}: privileged");
            assert_ne!(
                security.run_as_non_root,
                Some(false),
                "{t}/{c}: runAsNonRoot"
            );
            assert_ne!(security.run_as_user, Some(0), "{t}/{c}: runAsUser");
            let caps = security.capabilities.as_ref().unwrap();
            assert!(
                caps.drop.iter().flatten().any(|d| d == "ALL"),
                "{t}/{c}: capabilities drop ALL"
            );
            assert!(
                caps.add.as_deref().unwrap_or_default().is_empty(),
                "{t}/{c}: capabilities add"
            );
            if let Some(seccomp) = &security.seccomp_profile {
                assert_eq!(seccomp.type_, "RuntimeDefault", "{t}/{c}: seccompProfile");
            }

            let resources = container.resources.as_ref().unwrap();
            for (kind, list) in [
                ("requests", &resources.requests),
                ("limits", &resources.limits),
            ] {
                let list = list
                    .as_ref()
                    .unwrap_or_else(|| panic!("{t}/{c}: no resource {kind}"));
                for resource in ["cpu", "memory"] {
                    assert!(list.contains_key(resource), "{t}/{c}: {kind}.{resource}");
                }
            }

            let image = container.image.as_deref().unwrap();
            assert!(
                image.contains(':') && !image.ends_with(":latest"),
                "{t}/{c}: image {image} needs a pinned tag"
            );
            // The server drains on SIGTERM by itself.
            assert!(
                container
                    .lifecycle
                    .as_ref()
                    .and_then(|l| l.pre_stop.as_ref())
                    .is_none(),
                "{t}/{c}: preStop"
            );
        }

        // The server's drain window (default 2 s), plus time for in-flight
        // Checks, must fit in the grace period before SIGKILL.
        let grace_ms = pod.termination_grace_period_seconds.unwrap_or(30) * 1000;
        let drain_ms = r
            .server_config()
            .get("shutdown_drain_ms")
            .map_or(2000, |v| v.as_i64().unwrap());
        assert!(
            grace_ms >= drain_ms + 10_000,
            "{t}: terminationGracePeriodSeconds too short for a {drain_ms} ms drain"
        );
        assert_eq!(
            pod.automount_service_account_token,
            Some(false),
            "{t}: API token mounted"
        );
    }
}

#[test]
fn network_policy_admits_grpc_from_proxy_namespaces_and_admin_from_monitoring() {
    for r in renderings() {
        let t = &r.target;
        let container = r.container();
        let policy = r.objects.network_policies[0].spec.as_ref().unwrap();
        assert_eq!(
            policy.policy_types.as_deref(),
            Some(&["Ingress".to_owned()][..]),
            "{t}: policyTypes"
        );
        for rule in policy.ingress.as_deref().unwrap() {
            let ports: BTreeSet<i32> = rule
                .ports
                .iter()
                .flatten()
                .map(|p| resolve_port(container, p.port.as_ref().unwrap()).unwrap())
                .collect();
            let peers = rule
                .from
                .as_deref()
                .unwrap_or_else(|| panic!("{t}: a rule admits everyone"));
            assert!(!peers.is_empty(), "{t}: a rule admits everyone");
            for peer in peers {
                assert!(
                    peer.ip_block.is_none() && peer.pod_selector.is_none(),
                    "{t}: peers are namespaces only"
                );
                assert!(
                    peer.namespace_selector.is_some(),
                    "{t}: peer without namespaceSelector"
                );
            }
            let names: BTreeSet<String> = peers
                .iter()
                .filter_map(|p| {
                    p.namespace_selector
                        .as_ref()?
                        .match_labels
                        .as_ref()?
                        .get("kubernetes.io/metadata.name")
                        .cloned()
                })
                .collect();
            if ports == BTreeSet::from([ADMIN_PORT]) {
                assert_eq!(
                    names,
                    BTreeSet::from(["monitoring".to_owned()]),
                    "{t}: admin peers"
                );
                assert_eq!(peers.len(), 1, "{t}: admin peers");
            } else {
                assert_eq!(
                    ports,
                    BTreeSet::from([GRPC_PORT]),
                    "{t}: a rule mixes ports"
                );
                assert!(
                    !names.contains("monitoring"),
                    "{t}: monitoring reaches gRPC"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Policies: one source of truth
// ---------------------------------------------------------------------------

#[test]
fn policies_config_map_holds_exactly_the_policy_files() {
    let dir = repo().join("policies");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".cedar")
            || name.ends_with(".cedarschema")
            || name == "entities.json"
            || name == "links.yaml"
            || name == "routes.yaml"
        {
            files.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    for required in ["schema.cedarschema", "entities.json"] {
        assert!(
            files.contains_key(required),
            "policies/{required} is missing"
        );
    }
    for r in renderings() {
        let data = r
            .config_map(CONFIG_MAP_POLICIES)
            .data
            .clone()
            .unwrap_or_default();
        let rendered: BTreeSet<&String> = data.keys().collect();
        let expected: BTreeSet<&String> = files.keys().collect();
        assert_eq!(
            rendered, expected,
            "{}: policies/kustomization.yaml must list every policy file",
            r.target
        );
        for (name, text) in &files {
            assert_eq!(
                &data[name], text,
                "{}: {name} differs from policies/{name}",
                r.target
            );
        }
    }
}

#[test]
fn rendered_config_and_policies_pass_the_servers_validate_command() {
    let binary = env!("CARGO_BIN_EXE_cedar-ext-authz");
    for r in renderings() {
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        for (name, text) in r
            .config_map(CONFIG_MAP_POLICIES)
            .data
            .clone()
            .unwrap_or_default()
        {
            std::fs::write(policies.join(name), text).unwrap();
        }
        // Same config, with the policy folder moved from the pod's mount to
        // the temporary copy (relative paths resolve against the config).
        let mut config = r.server_config();
        config["policy_dir"] = Value::String("policies".into());
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();

        let output = Command::new(binary)
            .arg("validate")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}: `cedar-ext-authz validate` refused the rendered config or policies:\n{}{}",
            r.target,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

// ---------------------------------------------------------------------------
// Istio
// ---------------------------------------------------------------------------

/// Every YAML document under deploy/istio/, with the file it came from.
fn istio_documents() -> Vec<(String, Value)> {
    let mut files = Vec::new();
    let mut pending = vec![repo().join("deploy/istio")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "deploy/istio/ has no YAML");
    files
        .iter()
        .flat_map(|path| {
            let name = path.strip_prefix(repo()).unwrap().display().to_string();
            let text = std::fs::read_to_string(path).unwrap();
            documents(&text, &name)
                .into_iter()
                .map(move |doc| (name.clone(), doc))
        })
        .collect()
}

fn istio_kind<'a>(docs: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|(_, d)| d.get("kind").and_then(Value::as_str) == Some(kind))
        .map(|(_, d)| d)
        .collect()
}

fn extension_providers(docs: &[(String, Value)]) -> Vec<&Value> {
    let providers: Vec<&Value> = docs
        .iter()
        .filter_map(|(_, d)| {
            d.get("meshConfig")
                .or_else(|| d.get("spec")?.get("meshConfig"))
        })
        .filter_map(|mesh| mesh.get("extensionProviders")?.as_sequence())
        .flatten()
        .collect();
    assert!(
        !providers.is_empty(),
        "no meshConfig.extensionProviders under deploy/istio/"
    );
    providers
}

fn provider<'a>(docs: &'a [(String, Value)], name: &str) -> &'a Value {
    let found: Vec<&Value> = extension_providers(docs)
        .into_iter()
        .filter(|p| p.get("name").and_then(Value::as_str) == Some(name))
        .collect();
    assert_eq!(found.len(), 1, "extension provider {name} declared once");
    found[0]
}

fn header_list(value: &Value, key: &str) -> BTreeSet<String> {
    value
        .get(key)
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|h| h.as_str().unwrap().to_ascii_lowercase())
        .collect()
}

#[test]
fn istio_provider_targets_the_rendered_service_and_fails_closed() {
    let docs = istio_documents();
    let grpc = provider(&docs, ISTIO_PROVIDER)
        .get("envoyExtAuthzGrpc")
        .expect("cedar-ext-authz is an envoyExtAuthzGrpc provider");

    let service = default_rendering().service();
    let host = format!(
        "{}.{}.svc.cluster.local",
        service.metadata.name.as_deref().unwrap(),
        service.metadata.namespace.as_deref().unwrap()
    );
    assert_eq!(yaml_str(grpc, &["service"]), Some(host.as_str()));
    let grpc_port = service
        .spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("grpc"))
        .unwrap()
        .port;
    assert_eq!(
        grpc.get("port").and_then(Value::as_i64),
        Some(i64::from(grpc_port))
    );
    assert_eq!(grpc_port, GRPC_PORT);

    assert_eq!(yaml_str(grpc, &["timeout"]), Some("0.5s"));
    assert_eq!(
        grpc.get("failOpen").and_then(Value::as_bool),
        Some(false),
        "fail closed, explicitly"
    );
    let status = yaml_str(grpc, &["statusOnError"]).expect("statusOnError set explicitly");
    assert!(
        status.starts_with('5') && status.len() == 3,
        "an outage must not look like a 403 deny: {status}"
    );
    assert!(
        grpc.get("includeRequestBodyInCheck").is_none(),
        "request bodies stay out of Checks"
    );
}

#[test]
fn istio_resources_parse_and_name_declared_providers_under_strict_mtls() {
    let docs = istio_documents();
    let declared: BTreeSet<&str> = extension_providers(&docs)
        .iter()
        .filter_map(|p| p.get("name")?.as_str())
        .collect();

    let policies = istio_kind(&docs, "AuthorizationPolicy");
    let custom: Vec<&&Value> = policies
        .iter()
        .filter(|p| yaml_str(p, &["spec", "action"]) == Some("CUSTOM"))
        .collect();
    assert!(!custom.is_empty(), "no CUSTOM AuthorizationPolicy");
    for policy in &custom {
        let name = yaml_str(policy, &["spec", "provider", "name"])
            .expect("CUSTOM policy names a provider");
        assert!(
            declared.contains(name),
            "provider {name} is not in meshConfig.extensionProviders"
        );
        let selector = policy
            .get("spec")
            .and_then(|s| s.get("selector"))
            .and_then(|s| s.get("matchLabels"));
        assert!(
            selector.is_some_and(|m| m.as_mapping().is_some_and(|m| !m.is_empty())),
            "CUSTOM policy without a workload selector"
        );
        assert!(
            policy
                .get("spec")
                .and_then(|s| s.get("rules"))
                .and_then(Value::as_sequence)
                .is_some_and(|r| !r.is_empty()),
            "CUSTOM policy without rules matches nothing"
        );
    }
    assert!(custom
        .iter()
        .any(|p| yaml_str(p, &["spec", "provider", "name"]) == Some(ISTIO_PROVIDER)));

    let peer = istio_kind(&docs, "PeerAuthentication");
    assert!(!peer.is_empty(), "no PeerAuthentication");
    for p in peer {
        assert_eq!(yaml_str(p, &["spec", "mtls", "mode"]), Some("STRICT"));
    }

    // `kubectl apply -k deploy/istio/` installs every Istio resource here.
    let rendered = documents(&kustomize("deploy/istio"), "deploy/istio");
    let resources = docs
        .iter()
        .filter(|(_, d)| {
            d.get("apiVersion").is_some()
                && d.get("kind").and_then(Value::as_str) != Some("Kustomization")
        })
        .count();
    assert_eq!(
        rendered.len(),
        resources,
        "deploy/istio/kustomization.yaml must list every resource file"
    );
}

#[test]
fn gateway_strips_client_identity_headers_before_authelia_adds_its_own() {
    let docs = istio_documents();
    let authelia = provider(&docs, "authelia")
        .get("envoyExtAuthzHttp")
        .expect("authelia is an HTTP provider");
    let upstream = header_list(authelia, "headersToUpstreamOnAllow");
    for header in [
        "remote-user",
        "remote-groups",
        "remote-email",
        "remote-name",
    ] {
        assert!(upstream.contains(header), "Authelia must forward {header}");
    }
    let checked = header_list(authelia, "includeRequestHeadersInCheck");
    for header in ["cookie", "authorization"] {
        assert!(checked.contains(header), "Authelia must see {header}");
    }

    let filters = istio_kind(&docs, "EnvoyFilter");
    assert_eq!(filters.len(), 1, "one EnvoyFilter strips identity headers");
    let filter = filters[0];
    let patches = filter["spec"]["configPatches"].as_sequence().unwrap();
    let mut removed = BTreeSet::new();
    for patch in patches {
        assert_eq!(yaml_str(patch, &["match", "context"]), Some("GATEWAY"));
        assert_eq!(yaml_str(patch, &["applyTo"]), Some("HTTP_FILTER"));
        // First in the chain, so before the ext_authz filter; a route-level
        // (VirtualService) removal would run after it and drop Authelia's.
        assert_eq!(
            yaml_str(patch, &["patch", "operation"]),
            Some("INSERT_FIRST")
        );
        let config = &patch["patch"]["value"]["typed_config"];
        assert_eq!(
            yaml_str(config, &["@type"]),
            Some("type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation")
        );
        for mutation in config["mutations"]["request_mutations"]
            .as_sequence()
            .unwrap()
        {
            removed.insert(mutation["remove"].as_str().unwrap().to_ascii_lowercase());
        }
    }
    for header in &upstream {
        assert!(
            removed.contains(header),
            "gateway does not strip {header} that Authelia sets"
        );
    }
    for (preset, headers) in PRESET_HEADERS {
        for header in *headers {
            assert!(
                removed.contains(*header),
                "gateway does not strip {preset} header {header}"
            );
        }
    }

    // The filter and Authelia's policy select the same gateway pods.
    let authelia_policy = istio_kind(&docs, "AuthorizationPolicy")
        .into_iter()
        .find(|p| yaml_str(p, &["spec", "provider", "name"]) == Some("authelia"))
        .expect("an AuthorizationPolicy uses the authelia provider");
    assert_eq!(
        filter["spec"]["workloadSelector"]["labels"],
        authelia_policy["spec"]["selector"]["matchLabels"],
        "strip filter and Authelia policy select different workloads"
    );
}

#[test]
fn production_overlay_trusts_exactly_the_istio_gateway() {
    let production = renderings()
        .iter()
        .find(|r| r.target == "k8s/overlays/production")
        .unwrap();
    let config = production.server_config();
    let forwarders: Vec<&str> = config["identity"]["trusted_forwarders"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        forwarders.len(),
        1,
        "production trusts one gateway: {forwarders:?}"
    );
    assert!(
        forwarders[0].contains("/sa/") && forwarders[0].contains("ingressgateway"),
        "{forwarders:?}"
    );
    // Only the preset whose headers the gateway's Authelia sets.
    let presets: Vec<&str> = config["identity"]["presets"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(presets, ["authelia"]);

    // The default deployment trusts nobody until configured.
    let default = default_rendering().server_config();
    assert!(default["identity"]["trusted_forwarders"]
        .as_sequence()
        .unwrap()
        .is_empty());

    // Knobs: production exports spans and runs more replicas.
    let container = production.container();
    let env: BTreeMap<&str, &str> = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.as_str(), e.value.as_deref()?)))
        .collect();
    assert!(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .is_some_and(|v| v.starts_with("http")),
        "{env:?}"
    );
    assert_eq!(
        production.deployment().spec.as_ref().unwrap().replicas,
        Some(3)
    );
}

// ---------------------------------------------------------------------------
// Container image
// ---------------------------------------------------------------------------

#[test]
fn dockerfile_builds_locked_and_runs_non_root_on_the_served_ports() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert!(
        froms
            .first()
            .is_some_and(|f| f.starts_with("rust:1-bookworm")),
        "{froms:?}"
    );
    assert_eq!(
        froms.last().copied(),
        Some("gcr.io/distroless/cc-debian12:nonroot")
    );
    // The profile the benchmarks measure, and the binary that profile built.
    assert!(lines
        .iter()
        .any(|l| l.starts_with("RUN cargo build --profile production --locked")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("COPY --from=build")
            && l.contains("/target/production/cedar-ext-authz ")));
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("[profile.production]"));

    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    let uid: i64 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric USER");
    assert!(uid > 0);
    let pod_uid = default_rendering()
        .pod_spec()
        .security_context
        .as_ref()
        .unwrap()
        .run_as_user;
    assert_eq!(
        pod_uid,
        Some(uid),
        "Deployment runAsUser vs Dockerfile USER"
    );

    let exposed: BTreeSet<i32> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace().map(|p| p.parse::<i32>().unwrap()))
        .collect();
    assert_eq!(exposed, BTreeSet::from([GRPC_PORT, ADMIN_PORT]));

    let entrypoint = lines
        .iter()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint).expect("exec-form ENTRYPOINT");
    assert!(
        entrypoint
            .first()
            .is_some_and(|e| e.ends_with("/cedar-ext-authz")),
        "{entrypoint:?}"
    );
    assert_eq!(entrypoint.get(1).map(String::as_str), Some("serve"));
    // The Deployment names the same binary explicitly.
    let command = default_rendering().container().command.clone().unwrap();
    assert_eq!(command.first(), entrypoint.first());

    // Files copied from the build context exist (globs match something).
    for line in lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
    {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &words[..words.len() - 1] {
            if *source == "." {
                continue;
            }
            let matched = match source.split_once('*') {
                None => repo().join(source).exists(),
                Some((prefix, suffix)) => {
                    let (dir, start) = prefix.rsplit_once('/').unwrap_or((".", prefix));
                    std::fs::read_dir(repo().join(dir)).unwrap().any(|e| {
                        let name = e.unwrap().file_name().to_string_lossy().into_owned();
                        name.starts_with(start) && name.ends_with(suffix)
                    })
                }
            };
            assert!(matched, "Dockerfile copies {source}, which does not exist");
        }
    }

    // The image serves the same policy set as the ConfigMap: every file the
    // policies kustomization lists is copied.
    let copied: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
        .flat_map(|l| l.split_whitespace().skip(1))
        .collect();
    let kustomization =
        std::fs::read_to_string(repo().join("policies/kustomization.yaml")).unwrap();
    let listed = kustomization
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter(|name| name.contains('.'));
    for name in listed {
        let path = format!("policies/{name}");
        let covered = copied.iter().any(|source| match source.split_once('*') {
            None => *source == path,
            Some((prefix, suffix)) => path.starts_with(prefix) && path.ends_with(suffix),
        });
        assert!(
            covered,
            "the Dockerfile does not copy {path}, which the ConfigMap holds"
        );
    }

    let ignored = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    let ignored: BTreeSet<&str> = ignored.lines().map(str::trim).collect();
    for entry in ["target", ".tools", ".git"] {
        assert!(ignored.contains(entry), ".dockerignore lacks {entry}");
    }
}

/// Keeps the helper honest: a rendering's ConfigMap names all carry a hash.
#[test]
fn generated_config_map_names_carry_kustomize_hash_suffixes() {
    assert!(generated_from(
        "cedar-ext-authz-config-9h6t4g869m",
        CONFIG_MAP_CONFIG
    ));
    assert!(!generated_from("cedar-ext-authz-config", CONFIG_MAP_CONFIG));
    assert!(!generated_from(
        "cedar-ext-authz-policies-9h6t4g869m",
        CONFIG_MAP_CONFIG
    ));
    for r in renderings() {
        for cm in &r.objects.config_maps {
            let name = cm.metadata.name.as_deref().unwrap();
            assert!(
                generated_from(name, CONFIG_MAP_CONFIG)
                    || generated_from(name, CONFIG_MAP_POLICIES),
                "{}: ConfigMap {name} is not a generated one",
                r.target
            );
        }
    }
}
