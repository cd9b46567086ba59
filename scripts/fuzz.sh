#!/usr/bin/env bash
# Short, time-bounded fuzzing of every target in fuzz/, as the test command
# runs it (scripts/test.sh). Exits non-zero when a target finds a crash;
# the input is left in fuzz/artifacts/<target>/ (git-ignored) and can be
# replayed with `cargo fuzz run <target> <file>`.
#
#   scripts/fuzz.sh                 # every target, FUZZ_SECONDS (30) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh check_request
#
# Installs cargo-fuzz, pinned, into .tools/cargo/ when it is missing. cargo-fuzz
# builds with nightly-only compiler flags (coverage instrumentation);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them, for this build
# only: it is set here, never for the main build. No sanitizer is used:
# the crate forbids unsafe code, so a sanitizer would mostly slow the run.
#
# Inputs: the committed seeds in fuzz/seeds/<target>/ and what earlier runs
# found in fuzz/corpus/<target>/ (git-ignored, grows across runs).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${FUZZ_SECONDS:-30}"
targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=(canonicalize check_request)
fi

version=0.13.2
export PATH="$root/.tools/cargo/bin:$PATH"
if ! cargo-fuzz --version 2>/dev/null | grep -q "$version"; then
    echo "fuzz: installing cargo-fuzz $version into .tools/cargo"
    cargo install --quiet --locked --root "$root/.tools/cargo" cargo-fuzz --version "$version"
fi

export RUSTC_BOOTSTRAP=1
flags=(--sanitizer none --fuzz-dir fuzz)

# One build for every target: they share all dependencies.
cargo fuzz build "${flags[@]}"

for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    echo "fuzz: $target for ${seconds}s"
    cargo fuzz run "${flags[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1
done
