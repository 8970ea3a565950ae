#!/usr/bin/env bash
# Trains the networks `lava-retrieval reproduce` reads: the twelve Table 1 architectures (seed 0)
# and four more seeds of 32-64-10 for Fig 4's error bars, each with the shipped recipe shortened
# to 10 epochs (2 cores: about an hour in all). Resumable: a finished network is skipped, an
# interrupted one continues with --resume.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-10}
train() {  # train OUT ARCH SEED
    local out=$1 arch=$2 seed=$3
    if [[ -f $out/checkpoint.json ]] && .venv/bin/python - "$out" "$EPOCHS" <<'PY'
import json, sys
meta = json.load(open(sys.argv[1] + "/checkpoint.json"))
sys.exit(0 if len(meta["history"]) >= int(sys.argv[2]) else 1)
PY
    then echo "done: $out"; return; fi
    local resume=()
    [[ -f $out/checkpoint.json ]] && resume=(--resume)
    echo "training: $out"
    .venv/bin/lava-retrieval train --arch "$arch" --epochs "$EPOCHS" --seed "$seed" \
        --out "$out" --no-progress "${resume[@]}"
}
train checkpoints/32-64-10-seed0 32-64-10 0
for seed in 1 2 3 4; do train "checkpoints/32-64-10-seed$seed" 32-64-10 "$seed"; done
for arch in 4-8-10 8-16-10 16-32-10 4-8-16-10 8-16-32-10 16-32-64-10 4-8-16-32-10 \
            8-16-32-64-10 32-64-128-10 16-32-64-128-10 32-64-128-256-10; do
    train "checkpoints/$arch" "$arch" 0
done
echo "all trained"
