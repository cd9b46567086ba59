//! `cedar-ext-authz`: parses arguments and hands over to the library.

use std::process::ExitCode;

use cedar_ext_authz::cli::{self, Cli, Command};
use cedar_ext_authz::config::{Config, LogConfig};
use clap::Parser;

fn main() -> ExitCode {
    // One TLS crypto provider for the whole process: dependencies link
    // both ring and aws-lc-rs, and rustls refuses to pick between them.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.config),
        Command::Validate { format } => cli::validate(&cli.config, format),
        Command::Format => cli::format(&cli.config),
        Command::Check { request } => cli::check(&cli.config, &request),
        Command::Test { dir } => cli::test(&cli.config, &dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            // Log set-up needs the config; report this error plainly.
            let _guard = cedar_ext_authz::telemetry::init(&LogConfig::default());
            tracing::error!(error = %error, "cannot start");
            return Err(error.into());
        }
    };
    let runtime = tokio::runtime::Runtime::new()?;
    // The OTLP gRPC exporter is built on the runtime, which outlives it.
    let telemetry = {
        let _runtime = runtime.enter();
        cedar_ext_authz::telemetry::init_with_export(&config.log, &config.telemetry)
    };
    let mut guard = match telemetry {
        Ok(guard) => guard,
        Err(error) => {
            let _guard = cedar_ext_authz::telemetry::init(&config.log);
            tracing::error!(error = %format!("{error:#}"), "cannot start");
            return Err(error);
        }
    };
    let result = runtime.block_on(cedar_ext_authz::serve::run(config));
    if let Err(error) = &result {
        tracing::error!(error = %format!("{error:#}"), "cannot serve");
    }
    // After SIGTERM: export the last spans while the runtime still runs.
    guard.shutdown();
    result
}
