//! The command line: `serve` (the default), `validate` and `check`.
//!
//! Commands only parse arguments and call into the library; every check
//! they run is the one the server runs.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};

use crate::authorize;
use crate::config::Config;
use crate::policy::PolicyStore;
use crate::server::DESCRIPTOR_SET;

/// Config file used when none is named.
pub const DEFAULT_CONFIG: &str = "config/cedar-ext-authz.yaml";

#[derive(Debug, Parser)]
#[command(
    name = "cedar-ext-authz",
    version,
    about = "Envoy external authorization with Cedar policies"
)]
pub struct Cli {
    /// YAML config file.
    #[arg(long, short, global = true, env = "CEDAR_EXT_AUTHZ_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Envoy's Authorization API (the default).
    Serve,
    /// Check the config, schema, policies and entities; exit non-zero on error.
    Validate {
        /// Also require every policy file to be in Cedar's formatted layout.
        #[arg(long)]
        format: bool,
    },
    /// Rewrite the policy files in Cedar's formatted layout.
    Format,
    /// Decide one CheckRequest given as JSON (a file, or `-` for stdin) and
    /// print the mapped Cedar request and the decision.
    Check {
        #[arg(default_value = "-")]
        request: PathBuf,
    },
    /// Run the YAML policy test cases in a folder; exit non-zero on failure.
    Test {
        #[arg(default_value = "policies/tests")]
        dir: PathBuf,
    },
}

/// Loads the config and policy set, reporting the first error.
pub fn load(config: &Path) -> anyhow::Result<(Config, PolicyStore)> {
    let config = Config::load(config)?;
    let store = PolicyStore::load(&config.policy_dir, &config.request.routes)?;
    Ok((config, store))
}

/// `validate`: prints a one-line summary.
pub fn validate(config: &Path, format: bool) -> anyhow::Result<()> {
    let (_, store) = load(config)?;
    if format {
        let differ = crate::policy::format::unformatted(&store.dir)?;
        for (path, _) in &differ {
            eprintln!(
                "{}: not formatted (run `cedar-ext-authz format`)",
                path.display()
            );
        }
        anyhow::ensure!(
            differ.is_empty(),
            "{} policy files are not formatted",
            differ.len()
        );
    }
    println!(
        "ok: {} policies, policy set {} ({})",
        store.policy_count,
        store.version,
        store.dir.display()
    );
    Ok(())
}

/// `check`: prints the explanation as JSON; exit status 0 even on deny.
pub fn check(config: &Path, request: &Path) -> anyhow::Result<()> {
    let (config, store) = load(config)?;
    let text = read_input(request)?;
    let check = parse_check_request(&text)?;
    let outcome = authorize::evaluate(&check, check.encoded_len(), &config, &store);
    println!(
        "{}",
        serde_json::to_string_pretty(&crate::explain::to_json(&outcome))?
    );
    Ok(())
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok(text);
    }
    Ok(std::fs::read_to_string(path)?)
}

/// Parses a CheckRequest from its protobuf JSON form, as grpcurl takes it.
pub fn parse_check_request(json: &str) -> anyhow::Result<CheckRequest> {
    let pool = DescriptorPool::decode(DESCRIPTOR_SET)?;
    let descriptor = pool
        .get_message_by_name("envoy.service.auth.v3.CheckRequest")
        .ok_or_else(|| anyhow::anyhow!("CheckRequest is missing from the descriptor set"))?;
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let message = DynamicMessage::deserialize(descriptor, &mut deserializer)?;
    deserializer.end()?;
    Ok(CheckRequest::decode(message.encode_to_vec().as_slice())?)
}

/// `test`: runs policy cases and prints a report; fails if any case fails.
pub fn test(config: &Path, dir: &Path) -> anyhow::Result<()> {
    let (config, store) = load(config)?;
    let summary = crate::policy_tests::run(dir, &config, &store)?;
    print!("{}", summary.report);
    if summary.failed > 0 || summary.passed == 0 {
        anyhow::bail!(
            "{} of {} policy cases failed",
            summary.failed,
            summary.passed + summary.failed
        );
    }
    Ok(())
}

/// `format`: rewrites unformatted policy files.
pub fn format(config: &Path) -> anyhow::Result<()> {
    let config = Config::load(config)?;
    for (path, pretty) in crate::policy::format::unformatted(&config.policy_dir)? {
        std::fs::write(&path, pretty)?;
        println!("formatted {}", path.display());
    }
    Ok(())
}
