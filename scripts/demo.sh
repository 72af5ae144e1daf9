#!/usr/bin/env bash
# The demo: generates the two-org development network into ./medfabric-data, verifies
# its genesis block, starts the Hospital peer from its node config, then verifies and
# re-validates a real Fabric 2.5 ledger offline the way a regulator would, and measures
# the identity/signature hot path. Usage: ./scripts/demo.sh
source "$(dirname "$0")/env.sh"

cargo build --workspace --locked --bins
medfabric="$CARGO_TARGET_DIR/debug/medfabric"
data="$repo_root/medfabric-data"

step() { printf '\n==> %s\n' "$*"; }

step "Generating network-config/dev.yaml into $data"
force=()
[ -f "$data/network.yaml" ] && force=(--force)
"$medfabric" network generate network-config/dev.yaml --out "$data" "${force[@]}"

step "Verifying the generated channel's genesis block"
"$medfabric" ledger verify "$data/channel-artifacts" --config "$data/channel-artifacts/medchannel.block"

# Starts a node (name, then its command line) with its output under $data, waits for
# its JSON ready line, prints it, and stops the node.
start_and_stop() {
  local name=$1
  shift
  "$@" >"$data/$name.out" 2>"$data/$name.log" &
  local pid=$!
  for _ in $(seq 100); do
    grep -q '"ready"' "$data/$name.out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$data/$name.out"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

step "Starting peer0.hospital (RocksDB ledger from the genesis block, endorser on a free port), then stopping it"
start_and_stop peer0.hospital "$CARGO_TARGET_DIR/debug/medfabric-peer" \
  --config "$data/nodes/peer0.hospital.medfabric.local.yaml" --listen 127.0.0.1:0

step "Starting orderer0 (Raft on RocksDB, Broadcast/Deliver on a free port), then stopping it"
start_and_stop orderer0 "$CARGO_TARGET_DIR/debug/medfabric-orderer" \
  --config "$data/nodes/orderer0.orderer.medfabric.local.yaml" --listen 127.0.0.1:0 --operations-listen 127.0.0.1:0

if [ -d "$MEDFABRIC_TESTDATA/blocks" ]; then
  blocks="$MEDFABRIC_TESTDATA/blocks"
  step "Verifying a real Fabric 2.5 ledger offline (64 blocks): hashes, signatures, policies"
  "$medfabric" ledger verify "$blocks" --config "$blocks/000000.block"
  step "Re-validating the same chain through medfabric's validator and committer (summary)"
  "$medfabric" ledger replay "$blocks" --config "$blocks/000000.block" >"$data/replay.json"
  tail -n 6 "$data/replay.json"
  step "Inspecting block 63 (a transaction signed off-line with the Fabric Gateway client)"
  "$medfabric" block inspect "$blocks/000063.block" --config "$blocks/000000.block"
fi

step "Identity and signature hot path: operations per second on one thread (dev build; use --release for figures)"
"$medfabric" bench msp --seconds 1
