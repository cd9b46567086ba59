#!/usr/bin/env bash
# Supply-chain check of the test command: `cargo deny` with deny.toml.
# Licenses, bans and sources need nothing but the crates already fetched.
# Advisories need the RustSec database from GitHub, which the build
# machines cannot reach: run `scripts/deny.sh advisories` where it is.
#
# cargo-deny is installed, pinned, into .tools/cargo/ on first use. Only
# errors are printed; `.tools/cargo/bin/cargo-deny deny check bans` lists
# the duplicate versions too.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

version=0.20.2
bin="$root/.tools/cargo/bin/cargo-deny"
if ! "$bin" --version 2>/dev/null | grep -q "$version"; then
    echo "deny: installing cargo-deny $version into .tools/cargo"
    cargo install --quiet --locked --root "$root/.tools/cargo" cargo-deny --version "$version"
fi

checks=("$@")
if ((${#checks[@]} == 0)); then
    checks=(licenses bans sources)
fi
"$bin" deny --log-level error check "${checks[@]}"
# The fuzz crate is outside the workspace; its dependencies ship nowhere
# but are still held to the same sources.
"$bin" deny --log-level error --manifest-path fuzz/Cargo.toml check sources
