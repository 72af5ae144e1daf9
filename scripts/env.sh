# Shared set-up for scripts/test.sh and scripts/demo.sh (sourced, not run).
# Installs what a fresh Debian machine lacks and points cargo at a target directory
# outside the checkout, so clean clones (and CI) reuse earlier builds.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# libclang: RocksDB's Rust bindings (librocksdb-sys) run bindgen, which needs it.
# bindgen loads libclang.so (from libclang-N-dev); libclang-cpp is a different library.
have_libclang() {
  [ -n "${LIBCLANG_PATH:-}" ] && return 0
  compgen -G '/usr/lib/llvm-*/lib/libclang.so' >/dev/null 2>&1 && return 0
  ldconfig -p 2>/dev/null | grep -Eq '[[:space:]]libclang(-[0-9.]+)?\.so[[:space:]]'
}
if ! have_libclang; then
  echo "medfabric: installing libclang-dev (needed to build RocksDB's bindings)" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends libclang-dev >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  # shellcheck disable=SC1091
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || { echo "medfabric: cargo (Rust 1.88+) is required; install it with rustup" >&2; exit 1; }

# One target directory outside the checkout: a clean clone rebuilds only our crates.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  if mkdir -p /var/cache/medfabric/target 2>/dev/null && [ -w /var/cache/medfabric/target ]; then
    export CARGO_TARGET_DIR=/var/cache/medfabric/target
  else
    export CARGO_TARGET_DIR="$HOME/.cache/medfabric/target"
    mkdir -p "$CARGO_TARGET_DIR"
  fi
fi
# Two cores here: keep parallel compile jobs at two.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

# Conformance vectors from a real Fabric 2.5 network live beside the project.
export MEDFABRIC_TESTDATA="${MEDFABRIC_TESTDATA:-$repo_root/../shared/testdata/fabric-2.5}"
