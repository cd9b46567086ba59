//! Generates this project's own gRPC API and the descriptor set that the
//! reflection service serves.
//!
//! Nothing third-party is vendored: the Envoy and Google protos come from
//! the `envoy-types` package in the dependency graph, found with
//! `cargo metadata`, and are compiled by the pure-Rust `protox`.

use std::{env, path::PathBuf, process::Command};

const OWN_PROTO: &str = "proto/cedar_ext_authz/v1/explain.proto";

/// Envoy's API, which the reflection service describes beside our own.
const ENVOY_AUTH_PROTO: &str = "envoy/service/auth/v3/external_auth.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let envoy = envoy_types_proto_root()?;
    let includes = [
        PathBuf::from("proto"),
        envoy.join("data-plane-api"),
        envoy.join("googleapis"),
        envoy.join("protoc-gen-validate"),
        envoy.join("xds"),
        envoy.join("cel-spec"),
    ];
    let fds = protox::compile([OWN_PROTO, ENVOY_AUTH_PROTO], &includes)?;

    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .extern_path(".envoy", "::envoy_types::pb::envoy")
        .extern_path(".google", "::envoy_types::pb::google")
        .extern_path(".xds", "::envoy_types::pb::xds")
        .extern_path(".udpa", "::envoy_types::pb::udpa")
        .extern_path(".validate", "::envoy_types::pb::validate")
        .compile_fds(only_own(fds))?;
    Ok(())
}

/// Keeps every file in the set (imports are needed for resolution) but asks
/// for code only for ours, which `extern_path` makes possible.
fn only_own(fds: prost_types::FileDescriptorSet) -> prost_types::FileDescriptorSet {
    let file = fds
        .file
        .into_iter()
        .filter(|f| f.package() == "cedar_ext_authz.v1")
        .collect();
    prost_types::FileDescriptorSet { file }
}

/// Finds the `proto/` folder that the resolved `envoy-types` package ships:
/// in Cargo's registry cache at the version `Cargo.lock` pins, else through
/// `cargo metadata` (vendored or patched sources).
fn envoy_types_proto_root() -> Result<PathBuf, Box<dyn std::error::Error>> {
    if let Some(dir) = registry_copy() {
        return Ok(dir);
    }
    metadata_copy()
}

fn registry_copy() -> Option<PathBuf> {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").ok()?;
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"envoy-types\""))?
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))?
        .trim_end_matches('"')
        .to_owned();
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let name = format!("envoy-types-{version}");
    std::fs::read_dir(home.join("registry/src"))
        .ok()?
        .filter_map(Result::ok)
        .map(|index| index.path().join(&name).join("proto"))
        .find(|dir| dir.is_dir())
}

fn metadata_copy() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .output()?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let packages = meta["packages"]
        .as_array()
        .ok_or("no packages in metadata")?;
    let manifest = packages
        .iter()
        .find(|p| p["name"] == "envoy-types")
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("envoy-types is not in the dependency graph")?;
    let root = PathBuf::from(manifest);
    let dir = root.parent().ok_or("envoy-types manifest has no folder")?;
    println!(
        "cargo:rerun-if-changed={}",
        dir.join("Cargo.toml").display()
    );
    Ok(dir.join("proto"))
}
