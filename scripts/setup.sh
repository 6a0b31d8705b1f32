#!/usr/bin/env bash
# Installs what eventloom needs on Debian 12 and, where the system has no llama.cpp, builds it
# into a cache prefix outside the clone. Idempotent: a second run only checks and returns.
#
#   scripts/setup.sh           build and test dependencies
#   scripts/setup.sh --peers   also the benchmark peers: nats-server, redis-server, libnats,
#                              hiredis, and llama.cpp's llama-server and llama-batched-bench;
#                              the documentation `bench rag` indexes (python3.11-doc, perl-doc);
#                              and the official OpenAI client library for Node.js, which the
#                              gateway's tests use
#
# Environment: EVENTLOOM_CACHE (default ~/.cache/eventloom) holds the llama.cpp prefix.
set -euo pipefail

LLAMA_NPM_PACKAGE="node-llama-cpp@3.22.1"
CACHE="${EVENTLOOM_CACHE:-$HOME/.cache/eventloom}"
LLAMA_PREFIX="$CACHE/llama-3.22.1"
OPENAI_NPM_PACKAGE="openai@4.95.0"
NPM_PREFIX="$CACHE/npm"
PEERS=0
for arg in "$@"; do
    case "$arg" in
        --peers) PEERS=1 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

log() { printf 'setup: %s\n' "$*" >&2; }

PACKAGES=(
    build-essential cmake ninja-build pkg-config git ca-certificates clang-format curl jq
    libgtest-dev libgmock-dev libbenchmark-dev
    libboost-dev libboost-system-dev libcurl4-openssl-dev libssl-dev
    nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev
    libsqlite3-dev libhnswlib-dev libnats-dev libhiredis-dev
)
# python3.11-doc and perl-doc: the real text `eventloom bench rag` indexes (about 19 MiB).
PEER_PACKAGES=(nats-server redis-server python3.11-doc perl-doc)

install_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    local out
    out=$(mktemp)
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
            --no-install-recommends "${missing[@]}"; } >"$out" 2>&1; then
        tail -n 30 "$out" >&2
        log "apt-get failed; the whole output is in $out"
        return 1
    fi
    rm -f "$out"
}

llama_source() {
    # The llama.cpp source that node-llama-cpp ships as a git bundle.
    local src="$CACHE/llama-src"
    if [ ! -f "$src/CMakeLists.txt" ]; then
        log "fetching llama.cpp source from npm package $LLAMA_NPM_PACKAGE"
        local tmp
        tmp=$(mktemp -d)
        (cd "$tmp" && npm pack --silent "$LLAMA_NPM_PACKAGE" >/dev/null)
        tar -xzf "$tmp"/node-llama-cpp-*.tgz -C "$tmp" package/llama/gitRelease.bundle
        rm -rf "$src"
        git -c advice.detachedHead=false clone -q "$tmp/package/llama/gitRelease.bundle" "$src"
        rm -rf "$tmp"
    fi
    echo "$src"
}

llama_configure() {
    local src=$1 build=$2
    shift 2
    cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX="$LLAMA_PREFIX" -DCMAKE_INSTALL_RPATH='$ORIGIN;$ORIGIN/../lib' \
        -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF "$@" >/dev/null
}

install_llama() {
    if [ -f "$LLAMA_PREFIX/lib/cmake/llama/llama-config.cmake" ]; then return 0; fi
    if pkg-config --exists llama 2>/dev/null || [ -f /usr/lib/cmake/llama/llama-config.cmake ] \
        || [ -f /usr/local/lib/cmake/llama/llama-config.cmake ]; then
        return 0
    fi
    local src
    src=$(llama_source)
    log "building llama.cpp (library only) into $LLAMA_PREFIX; about 2 minutes on 2 cores"
    local build="$CACHE/llama-build-lib"
    llama_configure "$src" "$build" -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
    cmake --build "$build" -j"$(nproc)"
    cmake --install "$build" >/dev/null
    # The vocabulary files feed `eventloom model make-test`.
    mkdir -p "$LLAMA_PREFIX/share/llama/models"
    cp "$src"/models/ggml-vocab-*.gguf "$LLAMA_PREFIX/share/llama/models/"
}

install_llama_tools() {
    if [ -x "$LLAMA_PREFIX/bin/llama-server" ] && [ -x "$LLAMA_PREFIX/bin/llama-batched-bench" ] \
        && [ -f "$LLAMA_PREFIX/lib/libllama-server-impl.so" ]; then
        return 0
    fi
    local src
    src=$(llama_source)
    log "building llama-server and llama-batched-bench for benchmarks; about 5 minutes"
    local build="$CACHE/llama-build-tools"
    llama_configure "$src" "$build" -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON
    cmake --build "$build" -j"$(nproc)" --target llama-server llama-batched-bench
    mkdir -p "$LLAMA_PREFIX/bin"
    cp "$build/bin/llama-server" "$build/bin/llama-batched-bench" "$LLAMA_PREFIX/bin/"
    # Each tool's code is in a shared library of its own (lib<tool>-impl.so, which also needs
    # libmtmd): install those beside libllama.
    cp -P "$build"/bin/libllama-server-impl.so "$build"/bin/libllama-batched-bench-impl.so \
        "$build"/bin/libmtmd.so* "$LLAMA_PREFIX/lib/"
    # The tools link the build tree's shared libraries; point them at the installed ones.
    if command -v patchelf >/dev/null; then
        patchelf --set-rpath '$ORIGIN/../lib' "$LLAMA_PREFIX/bin/llama-server" "$LLAMA_PREFIX/bin/llama-batched-bench"
        for lib in "$LLAMA_PREFIX"/lib/libllama-*-impl.so "$LLAMA_PREFIX"/lib/libmtmd.so.*.*; do
            patchelf --set-rpath '$ORIGIN' "$lib"
        done
    fi
}

install_openai_client() {
    if [ -f "$NPM_PREFIX/node_modules/openai/package.json" ]; then return 0; fi
    log "installing the OpenAI client library for Node.js ($OPENAI_NPM_PACKAGE) into $NPM_PREFIX"
    mkdir -p "$NPM_PREFIX"
    npm install --silent --no-audit --no-fund --prefix "$NPM_PREFIX" "$OPENAI_NPM_PACKAGE" >/dev/null
}

install_packages "${PACKAGES[@]}"
# npm fetches the llama.cpp source; a Node.js from elsewhere may bring its own npm.
command -v npm >/dev/null || install_packages nodejs npm
[ "$PEERS" -eq 1 ] && install_packages "${PEER_PACKAGES[@]}" patchelf
install_llama
[ "$PEERS" -eq 1 ] && install_llama_tools
[ "$PEERS" -eq 1 ] && install_openai_client
# Services are started by the tests and benchmarks that need them, not left running.
if [ "$PEERS" -eq 1 ]; then
    systemctl disable --now redis-server nats-server >/dev/null 2>&1 || true
fi
log "ready (llama.cpp prefix: $LLAMA_PREFIX)"
