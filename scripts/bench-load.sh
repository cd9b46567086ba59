#!/usr/bin/env bash
# The load benchmark of docs/benchmarks.md, all measured in one run on one
# machine so that the ratios between the rows mean something:
#
#   1. direct gRPC Check load (examples/check_load.rs) against the
#      do-nothing baseline (examples/noop_authz.rs) and cedar-ext-authz at
#      100 and 10,000 generated policies (examples/gen_policies.rs);
#   2. HTTP load with wrk through one real Envoy (benches/load/envoy.yaml):
#      no ext_authz, ext_authz to the baseline, to cedar-ext-authz at 100
#      and at 10,000 policies;
#   3. start-up and reload time of 10,000 policies, and reloads under
#      load: failed Checks and Checks slower than 2x the p99 measured in 1
#      (saturated), then at a paced half rate, against a paced run without
#      reloads (which shows how many slow Checks the machine has anyway).
#
# For each server: requests per second, p50/p99, CPU per 1,000 Checks (from
# /proc/PID/stat) and peak RSS (VmHWM). Decision logging stays on (JSON to
# a file). Results go to target/bench-load/results.md and stdout.
#
#   scripts/bench-load.sh                 # 10 s per measurement
#   BENCH_SECONDS=30 scripts/bench-load.sh
#
# Needs: the tools of scripts/install-tools.sh (Envoy) and wrk (installed
# from Debian's packages when missing and running as root).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${BENCH_SECONDS:-10}"
concurrency="${BENCH_CONCURRENCY:-64}"
out="$root/target/bench-load"
rm -rf "$out"
mkdir -p "$out"
results="$out/results.md"
: >"$results"

scripts/install-tools.sh >/dev/null
envoy="$root/.tools/bin/envoy"
if ! command -v wrk >/dev/null; then
    if [[ $(id -u) == 0 ]]; then
        apt-get install -y -qq wrk >/dev/null
    else
        echo "bench-load: wrk is missing (apt-get install wrk)" >&2
        exit 1
    fi
fi
if ! command -v curl >/dev/null; then
    echo "bench-load: curl is missing" >&2
    exit 1
fi

# The profile that ships (Cargo.toml: fat LTO), for the baseline too.
cargo build -q --profile production --bin cedar-ext-authz \
    --example noop_authz --example check_load --example gen_policies
bin="$root/target/production/cedar-ext-authz"
ex="$root/target/production/examples"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

say() { echo "$*" | tee -a "$results"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
hz="$(getconf CLK_TCK)"

# waits for an admin /readyz (or, for the baseline, a TCP port) to answer.
wait_ready() {
    local url="$1" deadline=$((SECONDS + 60))
    until curl -fsS -o /dev/null "$url" 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "bench-load: $url never ready" >&2; exit 1; }
        sleep 0.02
    done
}

# --- servers ---------------------------------------------------------------

gen() { # NAME COUNT PORT
    "$ex/gen_policies" "$out/$1" "$2" "127.0.0.1:$3" >/dev/null
    # Envoy reaches the servers over plain loopback, so there is no peer
    # SPIFFE id; the benchmark Envoy is the only client, which is what
    # headers_stripped_by_proxy declares.
    sed -i 's/^identity:$/identity:\n  headers_stripped_by_proxy: true/' "$out/$1/config.yaml"
}
gen p100 100 19101
gen p10k 10000 19111

start_cedar() { # NAME PORT -> sets $pid and $start_ms
    local started
    started=$(date +%s%N)
    "$bin" serve --config "$out/$1/config.yaml" >"$out/$1.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_ready "http://127.0.0.1:$(($2 + 1))/readyz"
    start_ms=$((($(date +%s%N) - started) / 1000000))
}
start_cedar p100 19101
pid100=$pid start100_ms=$start_ms
start_cedar p10k 19111
pid10k=$pid start10k_ms=$start_ms
"$ex/noop_authz" 127.0.0.1:19121 >"$out/noop.log" 2>&1 &
pidnoop=$!
pids+=("$pidnoop")
sleep 0.5

sed -e s/NOOP_PORT/19121/ -e s/CEDAR100_PORT/19101/ -e s/CEDAR10K_PORT/19111/ \
    benches/load/envoy.yaml >"$out/envoy.yaml"
"$envoy" -c "$out/envoy.yaml" --concurrency 1 --log-level warn >"$out/envoy.log" 2>&1 &
pids+=("$!")
wait_ready "http://127.0.0.1:18901/ready"

# --- 1. direct gRPC ------------------------------------------------------------

# Runs check_load against PORT while counting PID's CPU; prints a row.
declare -A p99 rps
grpc_row() { # LABEL PORT PID
    local before after line cpu_ms n
    before=$(ticks "$3")
    line=$("$ex/check_load" --target "127.0.0.1:$2" --concurrency "$concurrency" \
        --connections 2 --warmup 0 --duration "$seconds")
    after=$(ticks "$3")
    n=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
    cpu_ms=$(((after - before) * 1000 / hz))
    p99[$1]=$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$line")
    rps[$1]=$(sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$line")
    say "| $1 | $(sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$line") \
| $(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$line") | ${p99[$1]} \
| $(awk -v c="$cpu_ms" -v n="$n" 'BEGIN { printf "%.1f", c * 1000 / n }') \
| $(hwm_mb "$3") | $(sed -E 's/.*ok=([0-9]+) denied=([0-9]+) errors=([0-9]+).*/ok \1, denied \2, errors \3/' <<<"$line") |"
}

say "## Direct gRPC Check, $concurrency in flight, ${seconds} s"
say ""
say "| server | Checks/s | p50 µs | p99 µs | server CPU ms / 1,000 Checks | peak RSS MB | answers |"
say "|---|---|---|---|---|---|---|"
grpc_row "noop baseline" 19121 "$pidnoop"
grpc_row "cedar-ext-authz, 100 policies" 19101 "$pid100"
grpc_row "cedar-ext-authz, 10,000 policies" 19111 "$pid10k"
say ""

# --- 2. through Envoy --------------------------------------------------------

http_row() { # LABEL PORT [PID]
    local before=0 after=0 txt rps n cpu="-" rss="-"
    [[ -n "${3:-}" ]] && before=$(ticks "$3")
    txt=$(wrk -t1 -c"$concurrency" -d"${seconds}s" --latency \
        -H "Host: app.example.test" -H "remote-user: u0" -H "remote-groups: g4,staff" \
        "http://127.0.0.1:$2/svc0/items")
    rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$txt")
    n=$(awk '/requests in/ {print $1}' <<<"$txt")
    if [[ -n "${3:-}" ]]; then
        after=$(ticks "$3")
        cpu=$(awk -v c="$(((after - before) * 1000 / hz))" -v n="$n" 'BEGIN { printf "%.1f", c * 1000 / n }')
        rss=$(hwm_mb "$3")
    fi
    local non2xx
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$txt")
    say "| $1 | $rps | $(awk '$1 == "50%" {print $2}' <<<"$txt") \
| $(awk '$1 == "99%" {print $2}' <<<"$txt") | $cpu | $rss | ${non2xx:-0} |"
}

say "## HTTP through Envoy (1 worker), wrk $concurrency connections, ${seconds} s"
say ""
say "| Envoy | requests/s | p50 | p99 | authz server CPU ms / 1,000 requests | peak RSS MB | non-2xx |"
say "|---|---|---|---|---|---|---|"
http_row "no ext_authz" 18080
http_row "ext_authz: noop baseline" 18081 "$pidnoop"
http_row "ext_authz: cedar-ext-authz, 100 policies" 18082 "$pid100"
http_row "ext_authz: cedar-ext-authz, 10,000 policies" 18083 "$pid10k"
say ""

# --- 3. start, reload, reload under load ---------------------------------------

reloads_before=$(grep -c '"policies reloaded"' "$out/p10k.log" || true)
# A reload under load: the Check load runs while the policy text changes
# (a comment appended: a new version, same decisions) and a SIGHUP arrives.
slow=$((2 * ${p99["cedar-ext-authz, 10,000 policies"]}))
"$ex/check_load" --target 127.0.0.1:19111 --concurrency "$concurrency" --connections 2 \
    --warmup 0 --duration "$seconds" --slow-us "$slow" >"$out/reload-load.txt" &
load=$!
sleep "$(awk -v s="$seconds" 'BEGIN { print s / 3 }')"
echo "// touched by bench-load.sh $(date +%s%N)" >>"$out/p10k/policies/policies.cedar"
sleep "$(awk -v s="$seconds" 'BEGIN { print s / 3 }')"
kill -HUP "$pid10k"
echo "// touched again $(date +%s%N)" >>"$out/p10k/policies/policies.cedar"
wait "$load"
sleep 1
reloads=$(($(grep -c '"policies reloaded"' "$out/p10k.log") - reloads_before))
reload_ms=$(grep '"policies reloaded"' "$out/p10k.log" | sed -E 's/.*"load.ms":([0-9]+).*/\1/' | sort -n | tail -1)
load_ms=$(grep '"policies loaded"' "$out/p10k.log" | sed -E 's/.*"load.ms":([0-9]+).*/\1/')
line=$(cat "$out/reload-load.txt")

say "## Start and reload, 10,000 policies"
say ""
say "| measure | value |"
say "|---|---|"
say "| start to ready (process start to /readyz 200), 100 policies | ${start100_ms} ms |"
say "| start to ready, 10,000 policies | ${start10k_ms} ms |"
say "| load of 10,000 policies at start (parse, validate, index) | ${load_ms} ms |"
say "| slowest reload of 10,000 policies under load | ${reload_ms:-none} ms |"
say "| reloads during the load run | $reloads |"
say "| Checks during the reload run | $(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line") |"
say "| failed Checks (gRPC errors) during the reload run | $(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$line") |"
say "| Checks slower than 2x p99 (${slow} µs) | $(sed -E 's/.*slow=([0-9]+).*/\1/' <<<"$line") |"
say "| max Check latency during the reload run | $(sed -E 's/.*max_us=([0-9]+).*/\1/' <<<"$line") µs |"

# The same at half the rate the 10,000-policy server sustained in step 1:
# loaded, not saturated. A paced run without reloads measures the p99 and,
# in a second run, how many Checks exceed twice that p99 anyway (the
# machine's own tail); a third run at that rate reloads twice.
rate=$((${rps["cedar-ext-authz, 10,000 policies"]} / 2))
paced() { # SLOW_US -> prints check_load's line
    "$ex/check_load" --target 127.0.0.1:19111 --concurrency "$concurrency" --connections 2 \
        --warmup 0 --duration "$seconds" --rate "$rate" --slow-us "$1"
}
paced_p99=$(paced 0 | sed -E 's/.*p99_us=([0-9]+).*/\1/')
steady=$(paced $((2 * paced_p99)))
reloads_before=$(grep -c '"policies reloaded"' "$out/p10k.log" || true)
paced $((2 * paced_p99)) >"$out/reload-paced.txt" &
load=$!
sleep "$(awk -v s="$seconds" 'BEGIN { print s / 3 }')"
echo "// paced reload $(date +%s%N)" >>"$out/p10k/policies/policies.cedar"
sleep "$(awk -v s="$seconds" 'BEGIN { print s / 3 }')"
echo "// paced reload again $(date +%s%N)" >>"$out/p10k/policies/policies.cedar"
wait "$load"
sleep 1
paced_reloads=$(($(grep -c '"policies reloaded"' "$out/p10k.log") - reloads_before))
line=$(cat "$out/reload-paced.txt")
say "| paced load (half of step 1's rate): Checks/s | $rate |"
say "| paced, no reload: p99 | ${paced_p99} µs |"
say "| paced, no reload: Checks slower than 2x that p99 | $(sed -E 's/.*slow=([0-9]+).*/\1/' <<<"$steady") of $(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$steady") |"
say "| paced, $paced_reloads reloads: Checks slower than 2x that p99 | $(sed -E 's/.*slow=([0-9]+).*/\1/' <<<"$line") of $(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line") |"
say "| paced, reloads: failed Checks | $(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$line") |"
say "| peak RSS, 10,000 policies, after everything | $(hwm_mb "$pid10k") MB |"
say ""
say "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $("$envoy" --version | grep -o '[0-9]\+\.[0-9]\+\.[0-9]\+/[A-Za-z]*' | head -1 | sed 's/^/Envoy /'); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)."
