#!/usr/bin/env bash
# Verifies everything: formatting, clippy with warnings denied, and every test of the
# workspace. Changes no file. Usage: ./scripts/test.sh
source "$(dirname "$0")/env.sh"

if [ ! -d "$MEDFABRIC_TESTDATA/blocks" ]; then
  echo "medfabric: Fabric conformance vectors not found at $MEDFABRIC_TESTDATA" >&2
  echo "           (expected ../shared/testdata/fabric-2.5 beside the checkout, or set MEDFABRIC_TESTDATA)" >&2
  exit 1
fi

set -x
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
