#!/usr/bin/env bash
# The project's test command: installs the test tools, then runs the
# formatter check, clippy, every test target, the policy checks, the
# supply-chain check and a short fuzz run.
# Every step runs even after a failure; the exit status is non-zero when
# any step failed, and the failed steps are listed at the end.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

failed=()
step() {
    echo
    echo "==> $*"
    if ! "$@"; then
        echo "==> FAILED: $*"
        failed+=("$*")
    fi
}

# Tools first: without them the integration tests cannot run at all.
if ! scripts/install-tools.sh; then
    echo "==> FAILED: scripts/install-tools.sh" >&2
    exit 1
fi
export ENVOY_BIN="$root/.tools/bin/envoy"
export GRPCURL_BIN="$root/.tools/bin/grpcurl"

step cargo fmt --check
step cargo clippy --all-targets -- -D warnings
step cargo test --all-targets --no-fail-fast
step cargo run -q -- validate --format
step cargo run -q -- test policies/tests
step scripts/deny.sh
# Short and bounded: the committed seeds plus FUZZ_SECONDS of new inputs
# per target. Longer runs: FUZZ_SECONDS=600 scripts/fuzz.sh.
step env FUZZ_SECONDS="${FUZZ_SECONDS:-20}" scripts/fuzz.sh

echo
if ((${#failed[@]})); then
    echo "==> ${#failed[@]} step(s) failed:"
    printf '    %s\n' "${failed[@]}"
    exit 1
fi
echo "==> all steps passed"
