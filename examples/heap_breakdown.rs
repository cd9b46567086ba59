//! The heap a loaded policy store keeps, part by part, and the peak heap
//! of the load, for docs/benchmarks.md. Generates a folder of `COUNT`
//! policies (the mix of `benches/support/mod.rs`), loads it with dhat's
//! counting allocator and drops the store's parts one at a time.
//!
//! `cargo run --profile production --example heap_breakdown -- [COUNT]`

#[path = "../benches/support/mod.rs"]
mod support;

use anyhow::Context as _;
use cedar_ext_authz::policy::PolicyStore;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn heap() -> dhat::HeapStats {
    dhat::HeapStats::get()
}

fn mb(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .map_or(Ok(10_000), |a| a.parse())
        .context("usage: heap_breakdown [COUNT]")?;
    let dir = tempfile::tempdir()?;
    support::write_policy_dir(dir.path(), count)?;
    let _profiler = dhat::Profiler::builder().testing().build();
    let before = heap();
    let store = PolicyStore::load(dir.path(), &[])?;
    let loaded = heap();
    println!("policies: {count}");
    println!(
        "load peak (above start): {}",
        mb(loaded.max_bytes - before.curr_bytes)
    );
    println!(
        "kept: {} in {} blocks",
        mb(loaded.curr_bytes - before.curr_bytes),
        loaded.curr_blocks - before.curr_blocks
    );
    let mut last = loaded.curr_bytes;
    let mut part = |name: &str| {
        let now = heap().curr_bytes;
        println!("  {name}: {}", mb(last.saturating_sub(now)));
        last = now;
    };
    let PolicyStore {
        index,
        schema,
        entities,
        deny_annotations,
        origins,
        routes,
        type_names,
        shared_entities,
        batches,
        ..
    } = store;
    drop(batches);
    part("reload batches (keys, templates)");
    drop((origins, deny_annotations));
    part("origins and deny annotations");
    // A second index over the same (shared) policies: what filing costs.
    let before_copy = heap().curr_bytes;
    let copy = cedar_ext_authz::policy::PolicyIndex::from_policies(index.policies().cloned());
    let filing = heap().curr_bytes - before_copy;
    drop(copy);
    drop(index);
    part("policies and their index");
    println!(
        "    of which the index's own entries and maps: {}",
        mb(filing)
    );
    drop((shared_entities, entities));
    part("entities");
    drop((routes, type_names, schema));
    part("schema, routes, type names");
    println!(
        "left: {}",
        mb(heap().curr_bytes.saturating_sub(before.curr_bytes))
    );
    Ok(())
}
