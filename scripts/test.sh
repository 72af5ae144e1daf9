#!/usr/bin/env bash
# Verifies everything: formatting, clippy with warnings denied, and every test of the
# workspace. Changes no file. Usage: ./scripts/test.sh
source "$(dirname "$0")/env.sh"

if [ ! -d "$MEDFABRIC_TESTDATA/blocks" ]; then
  echo "medfabric: Fabric conformance vectors not found at $MEDFABRIC_TESTDATA" >&2
  echo "           (expected ../shared/testdata/fabric-2.5 beside the checkout, or set MEDFABRIC_TESTDATA)" >&2
  exit 1
fi

command -v npm >/dev/null 2>&1 || { echo "medfabric: Node.js 20+ with npm is required for the gateway acceptance test" >&2; exit 1; }

set -x
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The node binaries first: the multi-process and Node tests start them with `network up`.
cargo build --workspace --bins --locked
cargo test --workspace --locked
# The unmodified Fabric Gateway Node client against a network started by `network up`.
(cd tests/node && npm ci --no-audit --no-fund --omit=optional && MEDFABRIC_BIN="$CARGO_TARGET_DIR/debug/medfabric" npm test)
