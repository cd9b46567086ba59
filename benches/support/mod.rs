//! Generated policy folders and CheckRequests for the benchmarks and the
//! load examples (`examples/gen_policies.rs`, `examples/check_load.rs`).
//!
//! A folder of `count` policies is the project schema, a group hierarchy,
//! six fixed policies like the bundled ones (one of them a template) and
//! generated grants: per-user permits (40 %), per-group permits (30 %),
//! per-document permits (10 %), per-user forbids (10 %) and template links
//! (10 %). Request `k` is user `u{10k}`, in groups `g{10k+4}` and `staff`,
//! reading `/svc{10k}/items` on a path its own permit grants, so every size
//! decides it the same way. Running the server is left to the callers.

#![allow(dead_code, reason = "each bench or example uses part of it")]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

/// SPIFFE id of the trusted forwarder in generated configs.
pub const GATEWAY: &str = "spiffe://cluster.local/ns/istio-system/sa/ingress";

/// Policies every generated set starts with; the last is a template.
const FIXED: &str = r#"@id("public-read")
permit (principal, action in Action::"read", resource is Path)
when { resource.path like "/public/*" };

@id("admin-area-admins-only")
forbid (principal, action, resource is Path)
when { resource.path like "/admin/*" }
unless { principal in Group::"admins" };

@id("anonymous-cannot-write")
forbid (principal is Anonymous, action in Action::"write", resource);

@id("admins-everything")
permit (principal in Group::"admins", action, resource);

@id("staff-read-documents")
permit (principal in Group::"staff", action == Action::"document.read", resource is Document);

@id("group-reads-document")
permit (principal in ?principal, action == Action::"document.read", resource == ?resource);
"#;
const FIXED_COUNT: usize = 6;

/// Distinct request shapes `check_request` cycles through; all of them
/// exist in a set of 100 policies or more.
pub const REQUEST_SHAPES: usize = 9;

/// Writes `schema.cedarschema`, `entities.json`, `policies.cedar` and
/// `links.yaml` for a set of `count` policies (templates count as one).
pub fn write_policy_dir(dir: &Path, count: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let schema = include_str!("../../policies/schema.cedarschema");
    std::fs::write(dir.join("schema.cedarschema"), schema)?;
    let generated = count.saturating_sub(FIXED_COUNT);
    let (policies, links) = generated_policies(generated);
    std::fs::write(dir.join("policies.cedar"), format!("{FIXED}\n{policies}"))?;
    std::fs::write(dir.join("links.yaml"), format!("links:\n{links}"))?;
    std::fs::write(dir.join("entities.json"), entities(generated))?;
    Ok(())
}

/// Policy text and link entries for `n` generated grants.
fn generated_policies(n: usize) -> (String, String) {
    let (mut text, mut links) = (String::new(), String::new());
    for i in 0..n {
        let _ = match i % 10 {
            0..=3 => writeln!(
                text,
                "@id(\"user-{i}\")\npermit (principal == User::\"u{i}\", action in Action::\"read\", resource is Path)\nwhen {{ resource.path like \"/svc{i}/*\" }};\n"
            ),
            4..=6 => writeln!(
                text,
                "@id(\"group-{i}\")\npermit (principal in Group::\"g{i}\", action == Action::\"GET\", resource is Path)\nwhen {{ resource.path like \"/team{i}/*\" }};\n"
            ),
            7 => writeln!(
                text,
                "@id(\"doc-{i}\")\npermit (principal, action == Action::\"document.read\", resource == Document::\"doc{i}\")\nwhen {{ principal in Group::\"g{}\" }};\n",
                i - 3
            ),
            8 => writeln!(
                text,
                "@id(\"lock-{i}\")\nforbid (principal == User::\"u{i}\", action in Action::\"write\", resource is Path)\nwhen {{ resource.path like \"/locked/*\" }};\n"
            ),
            _ => writeln!(
                links,
                "  - {{id: link-{i}, template: group-reads-document, principal: {{type: Group, id: g{}}}, resource: {{type: Document, id: doc{i}}}}}",
                i - 5
            ),
        };
    }
    if links.is_empty() {
        links.push_str("  []\n");
    }
    (text, links)
}

/// `staff` with `admins` under it, 50 departments under `staff`, and every
/// generated group in a department.
fn entities(n: usize) -> String {
    let group = |id: &str, parent: Option<&str>| {
        let parents = parent.map_or(String::new(), |p| {
            format!(r#"{{"type":"Group","id":"{p}"}}"#)
        });
        format!(r#"{{"uid":{{"type":"Group","id":"{id}"}},"attrs":{{}},"parents":[{parents}]}}"#)
    };
    let mut all = vec![group("staff", None), group("admins", Some("staff"))];
    all.extend((0..50).map(|d| group(&format!("dept{d}"), Some("staff"))));
    let groups = (0..n).filter(|i| (4..=6).contains(&(i % 10)));
    all.extend(groups.map(|i| group(&format!("g{i}"), Some(&format!("dept{}", i % 50)))));
    format!("[\n{}\n]\n", all.join(",\n"))
}

/// A config for a generated folder; `listen` is `host:port` of the gRPC
/// listener, the admin listener takes the next port.
pub fn config_yaml(policy_dir: &Path, listen: &str, policy_index: bool) -> String {
    let (host, port) = listen.rsplit_once(':').unwrap_or(("127.0.0.1", "9191"));
    let admin_port = port.parse::<u16>().map_or(9192, |p| p.saturating_add(1));
    format!(
        "listen: \"{listen}\"\nadmin_listen: \"{host}:{admin_port}\"\npolicy_dir: {}\n\
         log:\n  format: json\n\
         identity:\n  trusted_forwarders: [\"{GATEWAY}\"]\n\
         decision:\n  policy_index: {policy_index}\n",
        policy_dir.display()
    )
}

/// Request shape `k` (taken modulo [`REQUEST_SHAPES`]): an allowed read,
/// as Envoy's HTTP filter sends it after Authelia named the user.
pub fn check_request(k: usize) -> CheckRequest {
    let i = 10 * (k % REQUEST_SHAPES);
    let path = format!("/svc{i}/items");
    let headers: HashMap<String, String> = [
        (":path", path.as_str()),
        (":authority", "app.example.test"),
        ("remote-user", &format!("u{i}")),
        ("remote-groups", &format!("g{},staff", i + 4)),
        ("user-agent", "check-load/1"),
        ("x-request-id", "5a6c4d5e-0000-4000-8000-000000000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    http_check("GET", &path, headers)
}

fn http_check(method: &str, path: &str, headers: HashMap<String, String>) -> CheckRequest {
    let http = HttpRequest {
        method: method.into(),
        path: path.into(),
        host: "app.example.test".into(),
        headers,
        protocol: "HTTP/1.1".into(),
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                principal: GATEWAY.into(),
                ..Default::default()
            }),
            request: Some(Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}
