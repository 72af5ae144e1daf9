#!/usr/bin/env bash
# The demo: generates the two-org development network into ./medfabric-data, verifies
# its genesis block, then verifies a real Fabric 2.5 ledger offline the way a regulator
# would, and measures the identity/signature hot path. Usage: ./scripts/demo.sh
source "$(dirname "$0")/env.sh"

cargo build --workspace --locked --bin medfabric
medfabric="$CARGO_TARGET_DIR/debug/medfabric"
data="$repo_root/medfabric-data"

step() { printf '\n==> %s\n' "$*"; }

step "Generating network-config/dev.yaml into $data"
force=()
[ -f "$data/network.yaml" ] && force=(--force)
"$medfabric" network generate network-config/dev.yaml --out "$data" "${force[@]}"

step "Verifying the generated channel's genesis block"
"$medfabric" ledger verify "$data/channel-artifacts" --config "$data/channel-artifacts/medchannel.block"

if [ -d "$MEDFABRIC_TESTDATA/blocks" ]; then
  blocks="$MEDFABRIC_TESTDATA/blocks"
  step "Verifying a real Fabric 2.5 ledger offline (64 blocks): hashes, signatures, policies"
  "$medfabric" ledger verify "$blocks" --config "$blocks/000000.block"
  step "Inspecting block 63 (a transaction signed off-line with the Fabric Gateway client)"
  "$medfabric" block inspect "$blocks/000063.block" --config "$blocks/000000.block"
fi

step "Identity and signature hot path: operations per second on one thread (dev build; use --release for figures)"
"$medfabric" bench msp --seconds 1
