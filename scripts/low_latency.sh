#!/usr/bin/env bash
# The low-latency results of the README, on the full protocol (60,000 corpus images, 10,000
# queries) for T = 4 ... 128: the paper's method under Lava's timing and pipelined; the
# initial-membrane method (every window starts at half the threshold, pipelined timing, the
# activation percentile chosen on the validation split) with the membrane and the integrated
# readout; and the QCFS method (the ANN trained with quantised activations, its learned
# thresholds, initial membrane 0.5, pipelined) with the integrated and spike-count readouts. Writes
# results/sweep-*.{json,csv,md}, results/calibration-initial-half.json,
# results/snn-32-64-10-{initial-half,qcfs16}.npz and results/time-steps.png. About 90 minutes
# on 2 cores (the spike-count readout at T = 4, 8, 16 only); LR names the command to run (default: the project's .venv). A result file already
# there is kept (delete it to redo it), so an interrupted run continues where it stopped.
#
# The QCFS checkpoint lava_retrieval/pretrained/32-64-10-qcfs16 is shipped; it was fine-tuned
# from the shipped ReLU checkpoint (about 9 minutes on 2 cores) by the command recorded in its
# checkpoint.json:
#   lava-retrieval train --arch 32-64-10 --activation qcfs --levels 16 \
#       --init-from lava_retrieval/pretrained/32-64-10 --epochs 10 --learning-rate 1e-3 \
#       --seed 0 --out runs/ann-32-64-10-qcfs16 --no-progress
set -euo pipefail
cd "$(dirname "$0")/.."
LR=${LR:-.venv/bin/lava-retrieval}
PY=${PY:-.venv/bin/python}
STEPS="4 8 16 32 64 128"

if [ ! -f results/calibration-initial-half.json ]; then
    $LR calibrate --initial-membrane 0.5 --timing pipelined --time-steps 4 8 16 \
        --out results/calibration-initial-half.json --json > /dev/null
fi
if [ ! -f results/snn-32-64-10-initial-half.npz ]; then
    BEST=$($PY -c "import json; print(json.load(open('results/calibration-initial-half.json'))['best'])")
    $LR convert --initial-membrane 0.5 --activation-percentile "$BEST" \
        --out results/snn-32-64-10-initial-half.npz --json \
        > results/convert-32-64-10-initial-half.json
fi

if [ ! -f results/snn-32-64-10-qcfs16.npz ]; then
    $LR convert --checkpoint lava_retrieval/pretrained/32-64-10-qcfs16 \
        --out results/snn-32-64-10-qcfs16.npz --json > results/convert-32-64-10-qcfs16.json
fi

evaluate() {  # STEM, then the options of `lava-retrieval evaluate`
    local stem=$1
    shift
    [ -f "results/$stem.json" ] && return 0
    $LR evaluate --time-steps $STEPS --out-dir results --stem "$stem" --json --no-progress "$@" \
        > /dev/null
}
evaluate sweep-paper-delay --network results/snn-32-64-10.npz
evaluate sweep-paper-pipelined --network results/snn-32-64-10.npz --timing pipelined
evaluate sweep-initial-half-pipelined --network results/snn-32-64-10-initial-half.npz \
    --timing pipelined
evaluate sweep-initial-half-pipelined-integrated \
    --network results/snn-32-64-10-initial-half.npz --timing pipelined --readout integrated
# The default method's sweep (qcfs8-analog) is a step of `lava-retrieval reproduce` (its energy
# model quotes it).
[ -f results/sweep-qcfs8-analog-exact_count-integrated.json ] || $LR reproduce --only sweeps --no-progress > /dev/null
# The QCFS network under the exact-count schedule (every layer integrates T steps, then fires T).
STEPS="1 2 4 8 16 32" evaluate sweep-qcfs-exact_count-integrated --method qcfs \
    --network results/snn-32-64-10-qcfs16.npz --timing exact_count --readout integrated
# The same network with graded spikes (T levels sent as one message, one step a layer).
STEPS="1 2 4 8 16 32" evaluate sweep-qcfs-graded-integrated --method qcfs-graded \
    --network results/snn-32-64-10-qcfs16.npz
# The analog-input networks: the QCFS ANNs fine-tuned at L = 8 and L = 4 levels with the 8-bit
# image as their input (lava_retrieval/pretrained/32-64-10-qcfs{8,4}a, each trained in about 9
# minutes on 2 cores by the command in its checkpoint.json), converted with --analog-input. The
# default method (qcfs8-analog, exact-count schedule) is swept by `reproduce --only sweeps` above.
for L in 8 4; do
    [ -f "results/snn-32-64-10-qcfs$L-analog.npz" ] || $LR convert --analog-input \
        --checkpoint "lava_retrieval/pretrained/32-64-10-qcfs${L}a" \
        --out "results/snn-32-64-10-qcfs$L-analog.npz" --json \
        > "results/convert-32-64-10-qcfs$L-analog.json"
done
STEPS="1 2 4 8 16 32" evaluate sweep-qcfs8-analog-graded-spike_count --method qcfs8-analog-graded \
    --network results/snn-32-64-10-qcfs8-analog.npz
STEPS="1 2 4 8 16 32" evaluate sweep-qcfs4-analog-exact_count-integrated --method qcfs4-analog \
    --network results/snn-32-64-10-qcfs4-analog.npz
# The QCFS network pipelined (the default method before the analog input).
evaluate sweep-qcfs-pipelined-integrated --method qcfs --network results/snn-32-64-10-qcfs16.npz
# The spike-count readout of the same network, at the small T where readouts differ most.
for readout in spike_count; do
    STEPS="4 8 16" evaluate "sweep-qcfs-pipelined-$readout" --method qcfs \
        --network results/snn-32-64-10-qcfs16.npz --readout "$readout"
done

# Table 2's variants at T = 16 (the README's "Retrieval" section).
for variant in "no-delay --timing no_delay" "integrated --readout integrated"; do
    set -- $variant
    stem="table2-$1"
    shift
    [ -f "results/$stem.json" ] || $LR evaluate --network results/snn-32-64-10.npz \
        --time-steps 16 "$@" --out-dir results --stem "$stem" --json --no-progress > /dev/null
done

$PY - <<'PY'
import json

from lava_retrieval.data.fashion_mnist import load_fashion_mnist
from lava_retrieval.evaluation.energy import cost_curve
from lava_retrieval.evaluation.table2 import plot_time_steps
from lava_retrieval.snn.network import SpikingNetwork

runs = {  # label: (result stem, network, timing)
    "paper's method, Lava timing": ("sweep-paper-delay", "snn-32-64-10", "delay"),
    "paper's method, pipelined": ("sweep-paper-pipelined", "snn-32-64-10", "pipelined"),
    "initial membrane 0.5, pipelined": (
        "sweep-initial-half-pipelined", "snn-32-64-10-initial-half", "pipelined"
    ),
    "initial membrane 0.5, pipelined, integrated": (
        "sweep-initial-half-pipelined-integrated", "snn-32-64-10-initial-half", "pipelined"
    ),
    "QCFS-trained, pipelined, integrated": (
        "sweep-qcfs-pipelined-integrated", "snn-32-64-10-qcfs16", "pipelined"
    ),
    "QCFS-trained, exact-count schedule": (
        "sweep-qcfs-exact_count-integrated", "snn-32-64-10-qcfs16", "exact_count"
    ),
    # (graded first: its accuracies are the exact-count ones, which are drawn over them)
    "QCFS-8 analog input, graded": (
        "sweep-qcfs8-analog-graded-spike_count", "snn-32-64-10-qcfs8-analog", "graded"
    ),
    "QCFS-8 analog input, exact count (default)": (
        "sweep-qcfs8-analog-exact_count-integrated", "snn-32-64-10-qcfs8-analog", "exact_count"
    ),
    "QCFS-4 analog input, exact count": (
        "sweep-qcfs4-analog-exact_count-integrated", "snn-32-64-10-qcfs4-analog", "exact_count"
    ),
}
results = {label: json.load(open(f"results/{stem}.json")) for label, (stem, _, _) in runs.items()}
# Latency and the Loihi energy model's mJ per image, from 200 test images' operation counts.
images = load_fashion_mnist().test_images[:200]
costs = {}
for label, (stem, network, timing) in runs.items():
    steps = [int(r["model"][4:-1]) for r in results[label]["rows"] if r["model"] != "ANN"]
    net = SpikingNetwork.load(f"results/{network}.npz")
    costs[label] = cost_curve(net, images, timing, steps)
print(plot_time_steps(results, "results/time-steps.png", "32-64-10 on Fashion-MNIST", costs))
PY
