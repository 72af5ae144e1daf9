#!/usr/bin/env bash
# The demo: starts the consortium network (network-config/consortium.yaml) in
# ./medfabric-data — three Raft orderers and five organizations' peers as separate
# processes, TLS on every link — and runs the medical story (`medfabric demo`): an
# encrypted record, research consent with a fee, audited access, revocation,
# break-glass, an insurance claim, the regulator's disclosure report. Then it verifies
# the hospital peer's chain offline and re-validates a real Fabric 2.5 ledger, the way a
# regulator would.
# The network keeps running afterwards; stop it with
#   ./scripts/medfabric network down --data medfabric-data
# Usage: ./scripts/demo.sh
source "$(dirname "$0")/env.sh"

cargo build --workspace --locked --bins
medfabric="$CARGO_TARGET_DIR/debug/medfabric"
data="$repo_root/medfabric-data"

step() { printf '\n==> %s\n' "$*"; }

step "A fresh consortium network in $data"
if [ -d "$data" ]; then
  "$medfabric" network down --data "$data" 2>/dev/null || true
  rm -rf "$data"
fi
"$medfabric" demo --config network-config/consortium.yaml --data "$data"

step "Verifying the running Hospital peer's chain offline (exported block files)"
peer_data="$data/data/peer0.hospital.consortium.local"
"$medfabric" ledger export "$peer_data/ledger" --channel healthchannel --out "$data/export"
"$medfabric" ledger verify "$data/export" --config "$data/channel-artifacts/healthchannel.block" | tail -n 8

if [ -d "$MEDFABRIC_TESTDATA/blocks" ]; then
  blocks="$MEDFABRIC_TESTDATA/blocks"
  step "Verifying a real Fabric 2.5 ledger offline (64 blocks): hashes, signatures, policies"
  "$medfabric" ledger verify "$blocks" --config "$blocks/000000.block" | tail -n 8
  step "Re-validating the same chain through medfabric's validator and committer (summary)"
  "$medfabric" ledger replay "$blocks" --config "$blocks/000000.block" >"$data/replay.json"
  tail -n 6 "$data/replay.json"
fi

step "The network is still running"
"$medfabric" network status --data "$data"
echo "Try: ./scripts/medfabric audit disclosures HospitalMSP/patient1 --as inspector1    Stop: ./scripts/medfabric network down --data medfabric-data"
