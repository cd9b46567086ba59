//! Writes a generated policy folder and a config serving it, for
//! `scripts/bench-load.sh`: `DIR/policies/` with `COUNT` policies (see
//! `benches/support/mod.rs` for their mix) and `DIR/config.yaml`
//! listening on `LISTEN` (admin on the next port).
//!
//! `cargo run --release --example gen_policies -- DIR COUNT [LISTEN] [--no-index]`

#[path = "../benches/support/mod.rs"]
mod support;

use std::path::PathBuf;

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: gen_policies DIR COUNT [LISTEN] [--no-index]";
    let dir = PathBuf::from(args.first().context(usage)?);
    let count: usize = args.get(1).context(usage)?.parse().context(usage)?;
    let listen = args
        .get(2)
        .filter(|a| !a.starts_with("--"))
        .map_or("127.0.0.1:9191", String::as_str);
    let index = !args.iter().any(|a| a == "--no-index");
    let policies = dir.join("policies");
    support::write_policy_dir(&policies, count)?;
    let config = support::config_yaml(&policies, listen, index);
    std::fs::write(dir.join("config.yaml"), config)?;
    println!("{}", dir.join("config.yaml").display());
    Ok(())
}
