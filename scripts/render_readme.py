"""Render the README's result tables from the committed files under results/.

Every number the README quotes comes from a result file produced by the command written next to
it; this script only formats them. ``python scripts/render_readme.py`` rewrites the blocks between
``<!-- BEGIN name -->`` and ``<!-- END name -->``; ``--check`` exits 1 when the README is stale.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_benchmarks import (  # noqa: E402  (the benchmark blocks, beside this script)
    _load,
    bench_ann,
    bench_ann_1m,
    bench_index,
    bench_loihi_stream,
    bench_memory,
    bench_methods,
    bench_service,
    bench_sim,
    bench_web,
)

from lava_retrieval.evaluation import paper  # noqa: E402  (the paper's numbers, in one place)

# The paper's Table 1 row for 32-64-10 (Liu et al. 2022): reference values, not ours.
PAPER_TABLE1_32_64_10 = dict(
    zip(("train", "validation", "test"), paper.TABLE1["32-64-10"][:3], strict=True)
)


def shipped_ann() -> str:
    ours = _load("evaluate-ann-32-64-10.json")
    rows = [
        "| 32-64-10 ANN | train | validation | test |",
        "| --- | ---: | ---: | ---: |",
        "| this package (`results/evaluate-ann-32-64-10.json`) | "
        + " | ".join(f"{ours[f'{s}_accuracy']:.2f} %" for s in ("train", "validation", "test"))
        + " |",
        "| Liu et al. 2022, Table 1 | "
        + " | ".join(f"{v:.2f} %" for v in PAPER_TABLE1_32_64_10.values())
        + " |",
    ]
    command = "lava-retrieval evaluate-ann --json > results/evaluate-ann-32-64-10.json"
    return "\n".join(rows) + f"\n\nProduced by `{command}`."


def conversion() -> str:
    data = _load("convert-32-64-10.json")
    rows = [
        "| layer | output | param_scale | threshold | slope | fan-in | cores |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for layer in data["layers"]:
        shape = "x".join(map(str, layer["output_shape"]))
        rows.append(
            f"| {layer['name']} | {shape} | {layer['param_scale']:.2f} | {layer['threshold']} | "
            f"{layer['slope']:.4f} | {layer['fan_in']} | {layer['cores']} |"
        )
    loihi = data["loihi"]
    verdict = "deployable" if loihi["deployable"] else "not deployable"
    command = (
        "lava-retrieval convert --out results/snn-32-64-10.npz "
        "--loihi-report results/loihi-32-64-10.png --json > results/convert-32-64-10.json"
    )
    return (
        "\n".join(rows)
        + f"\n\n{loihi['total_cores']} of {loihi['chip_cores']} cores, {verdict}; core map: "
        + "`results/loihi-32-64-10.png`. Produced by\n"
        + f"`{command}`."
    )


def lava_graph() -> str:
    bench = _load("bench-lava-graph.json")
    t, lat = bench["throughput"], bench["batch1_latency"]
    return (
        f"On {bench['machine']['cpus']} CPU cores the fixed-point graph embeds the "
        f"{t['images']:,} test images at T = {bench['time_steps']} in {t['seconds']:.0f} s "
        f"({t['images_per_second']:.0f} images/s at batch {t['batch_size']}, start-up "
        "included; target 300); at batch 1 one "
        f"image takes {1000 * lat['seconds_per_image']:.1f} ms (the difference between runs "
        f"of {lat['images']} and {2 * lat['images']} images, median of "
        f"{len(lat['pairs_seconds_per_image'])} pairs). Checked before reporting: every run's "
        "embeddings equal the simulator's bit for bit. From "
        "`results/bench-lava-graph.json`, produced by `python benchmarks/lava_graph.py`."
    )


def table2() -> str:
    from lava_retrieval.evaluation.table2 import markdown

    result = _load("table2.json")
    p = result["protocol"]
    return (
        markdown(result)
        + f"\n\nCorpus {p['corpus']:,} training images, {p['queries']:,} test queries, readout "
        + f"`{p['readout']}`, timing `{p['timing']}`; percent. From `results/table2.json`, "
        + f"produced by `{' '.join(result['command'])}`."
    )


def table2_variants() -> str:
    rows = [
        "| SNN(16) variant | classification | top-1 | top-3 | mAP | file |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    commands = []
    for stem, what in (
        ("table2", "Lava timing, membrane readout (the paper's)"),
        ("table2-no-delay", "no synaptic delay, membrane readout"),
        ("table2-integrated", "Lava timing, integrated readout"),
    ):
        result = _load(f"{stem}.json")
        row = next(r for r in result["rows"] if r["model"] == "SNN(16)")
        rows.append(
            f"| {what} | {row['classification']:.2f} | {row['top1']:.2f} | {row['top3']:.2f} | "
            f"{row['mAP']:.2f} | `results/{stem}.json` |"
        )
        if stem != "table2":
            commands.append(f"`{' '.join(result['command'])}`")
    return "\n".join(rows) + "\n\nProduced by " + " and ".join(commands) + "."


SWEEPS = (
    ("sweep-paper-delay", "the paper's method, Lava timing (`delay`), membrane"),
    ("sweep-paper-pipelined", "the paper's method, `pipelined`, membrane"),
    ("sweep-initial-half-pipelined-integrated", "initial membrane 0.5, `pipelined`, integrated"),
    ("sweep-qcfs-pipelined-integrated", "**QCFS-trained**, `pipelined`, integrated"),
)
BEST = "sweep-qcfs-pipelined-integrated"


def _snn(result: dict, t: int) -> dict:
    return next(r for r in result["rows"] if r["model"] == f"SNN({t})")


def _ann(result: dict) -> dict:
    return next(r for r in result["rows"] if r["model"] == "ANN")


def low_latency() -> str:
    rows = [
        "| method | T | classification | top-1 | top-3 | mAP |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for stem, what in SWEEPS:
        result = _load(f"{stem}.json")
        for row in result["rows"]:
            if row["model"].startswith("SNN("):
                rows.append(
                    f"| {what} | {row['model'][4:-1]} | {row['classification']:.2f} | "
                    f"{row['top1']:.2f} | {row['top3']:.2f} | {row['mAP']:.2f} |"
                )
    for stem, what in (
        (SWEEPS[0][0], "ANN (ReLU: the source of the first three)"),
        (BEST, "ANN (QCFS, 16 levels: the source of the last)"),
    ):
        ann = _ann(_load(f"{stem}.json"))
        rows.append(
            f"| {what} | — | {ann['classification']:.2f} | {ann['top1']:.2f} | "
            f"{ann['top3']:.2f} | {ann['mAP']:.2f} |"
        )
    p = _load(f"{BEST}.json")["protocol"]
    calibration = _load("calibration-initial-half.json")
    return (
        "\n".join(rows)
        + f"\n\nCorpus {p['corpus']:,} training images, {p['queries']:,} test queries; percent. "
        + f"The initial-membrane method's activation percentile, {calibration['best']:g}, was "
        + f"chosen on the {calibration['protocol']['images']:,} validation images "
        + "(`results/calibration-initial-half.json`). From `results/"
        + "`, `results/".join(f"{stem}.json" for stem, _ in SWEEPS)
        + "`, produced by `bash scripts/low_latency.sh` (it writes the plot "
        + "`results/time-steps.png` too)."
    )


def _gaps(reference: dict, row: dict) -> str:
    return " / ".join(f"{reference[m] - row[m]:.2f}" for m in ("classification", "top1", "mAP"))


def _binary_target(relu: dict, row: dict, t: int) -> float | None:
    """How far ``row`` at T = ``t`` misses the binary-spike target against the ReLU ANN (<= 0:
    met), None where no target is set."""
    if t not in EXACT_TARGETS:
        return None
    over = max(relu[m] - row[m] for m in ("classification", "top1")) - EXACT_TARGETS[t]
    if t == 16:
        over = max(over, relu["mAP"] - row["mAP"] - 1.0)
    return over


def _met(over: float | None) -> str:
    return "—" if over is None else ("yes" if over <= 0 else f"no, by {over:.2f}")


def targets() -> str:
    relu = _ann(_load(f"{SWEEPS[0][0]}.json"))
    rows = [
        "| T | method | classification | top-1 | mAP | below the ReLU ANN (cls. / top-1 / mAP) "
        "| target (cls. and top-1; mAP) | met |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    binary = [("qcfs-exact", EXACT)] + [(m, stem) for m, stem in ANALOG if "graded" not in m]
    for t in (16, 8, 4):
        for method, stem in binary:
            result = _load(f"{stem}.json")
            row = _snn(result, t)
            limit = f"≤ {EXACT_TARGETS[t]:g}" + ("; ≤ 1" if t == 16 else "")
            rows.append(
                f"| {t} | `{method}` | {row['classification']:.2f} | {row['top1']:.2f} | "
                f"{row['mAP']:.2f} | {_gaps(relu, row)} | {limit} | "
                f"{_met(_binary_target(relu, row, t))} |"
            )
    graded, own = _load(f"{ANALOG_GRADED}.json"), None
    own = _ann(graded)
    closest = min(
        (r for r in graded["rows"] if r["model"].startswith("SNN(")),
        key=lambda r: max(own[m] - r[m] for m in ("classification", "top1", "mAP")),
    )
    worst = max(own[m] - closest[m] for m in ("classification", "top1", "mAP"))
    default = _ann(_load(f"{DEFAULT_SWEEP}.json"))
    test = _checkpoint_accuracy("32-64-10-qcfs8a")
    relu_test = _load("evaluate-ann-32-64-10.json")["test_accuracy"]
    return (
        "\n".join(rows)
        + "\n\nGraded spikes (`qcfs8-analog-graded`, one step per image): closest to its ANN "
        + f"at {closest['model'][4:-1]} levels, {_gaps(own, closest)} below it in "
        + "classification / top-1 / mAP (target: within 0.1: "
        + ("met" if worst <= 0.1 else f"not met, by {worst - 0.1:.2f}")
        + f"). The ReLU ANN: {relu['classification']:.2f} / {relu['top1']:.2f} / "
        + f"{relu['mAP']:.2f}; the default method's ANN (QCFS, 8 levels): "
        + f"{default['classification']:.2f} / {default['top1']:.2f} / {default['mAP']:.2f}, "
        + f"test accuracy {test:.2f} % against the ReLU network's {relu_test:.2f} % (at most 0.5 "
        + f"below allowed: {'met' if test >= relu_test - 0.5 else 'not met'}). From "
        + ", ".join(f"`results/{stem}.json`" for _, stem in ANALOG)
        + "."
    )


def _checkpoint_accuracy(name: str) -> float:
    meta = json.loads(
        (ROOT / "lava_retrieval" / "pretrained" / name / "checkpoint.json").read_text()
    )
    return meta["history"][-1]["test_accuracy"]


DEFAULT_SWEEP = "sweep-qcfs8-analog-exact_count-integrated"
ANALOG_GRADED = "sweep-qcfs8-analog-graded-spike_count"
ANALOG = (
    ("qcfs8-analog", DEFAULT_SWEEP),
    ("qcfs8-analog-graded", ANALOG_GRADED),
    ("qcfs4-analog", "sweep-qcfs4-analog-exact_count-integrated"),
)
SHIPPED_ANNS = (
    ("32-64-10", "ReLU (the paper's; `paper`)"),
    ("32-64-10-qcfs16", "QCFS, 16 levels, input 16 levels (`qcfs`, `qcfs-exact`, `qcfs-graded`)"),
    ("32-64-10-qcfs8a", "QCFS, 8 levels, 8-bit input (`qcfs8-analog`, the default; `-graded`)"),
    ("32-64-10-qcfs4a", "QCFS, 4 levels, 8-bit input (`qcfs4-analog`)"),
)


def qcfs8_training() -> str:
    """The 8-level fine-tuning's test accuracy against the shipped ReLU network's."""
    trained = _load("train-32-64-10-qcfs8.json")
    accuracy = trained["history"][-1]["test_accuracy"]
    relu = _load("evaluate-ann-32-64-10.json")["test_accuracy"]
    return (
        f"{accuracy:.2f} % after {len(trained['history'])} epochs, {relu - accuracy:.2f} points "
        "below the ReLU network: `results/train-32-64-10-qcfs8.json`, written by the command "
        "it records; `results/evaluate-ann-32-64-10.json`"
    )


def _chip_steps(result: dict, t: int) -> int:
    """Chip steps one image occupies at T = ``t`` in a table: the package's one definition
    (:func:`lava_retrieval.evaluation.energy.chip_steps`) on the table's network file."""
    from lava_retrieval.evaluation.energy import chip_steps
    from lava_retrieval.snn.network import SpikingNetwork

    command, protocol = result.get("command") or [], result["protocol"]
    if "--network" in command:
        path = command[command.index("--network") + 1]
    else:  # reproduce converts the method's network, committed under this name
        path = f"results/snn-32-64-10-{protocol['method']}.npz"
    return chip_steps(SpikingNetwork.load(ROOT / path), t, protocol["timing"])


def analog() -> str:
    relu = _ann(_load(f"{SWEEPS[0][0]}.json"))
    rows = [
        "| method | T | latency (chip steps) | classification | top-1 | top-3 | mAP | below its "
        "ANN (cls. / top-1 / mAP) | below the ReLU ANN | binary target met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for method, stem in ANALOG:
        result = _load(f"{stem}.json")
        own = _ann(result)
        graded = method.endswith("graded")
        for row in result["rows"]:
            if not row["model"].startswith("SNN("):
                continue
            t = int(row["model"][4:-1])
            latency = _chip_steps(result, t)
            over = None if graded else _binary_target(relu, row, t)
            rows.append(
                f"| `{method}` | {t} | {latency} | {row['classification']:.2f} | "
                f"{row['top1']:.2f} | {row['top3']:.2f} | {row['mAP']:.2f} | "
                f"{_gaps(own, row)} | {_gaps(relu, row)} | {_met(over)} |"
            )
    anns = ["| shipped ANN | what | test accuracy |", "| --- | --- | ---: |"]
    for name, what in SHIPPED_ANNS:
        anns.append(f"| `{name}` | {what} | {_checkpoint_accuracy(name):.2f} % |")
    p = _load(f"{DEFAULT_SWEEP}.json")["protocol"]
    convert = _load("convert-32-64-10-qcfs8-analog.json")
    levels = convert["layers"][0]["threshold"]
    return (
        "\n".join(rows)
        + f"\n\nCorpus {p['corpus']:,} training images, {p['queries']:,} test queries; percent; "
        + "integrated readout (the graded rows: the counts, the messages the embedding layer "
        + "sends); the graded rows take one step per image (T is their levels). "
        + f"The analog input carries {levels} pixel levels (`results/convert-32-64-10-"
        + "qcfs8-analog.json`). From "
        + ", ".join(f"`results/{stem}.json`" for _, stem in ANALOG)
        + ", produced by `lava-retrieval reproduce --only sweeps` (the default) and "
        + "`bash scripts/low_latency.sh`.\n\n"
        + "\n".join(anns)
        + "\n\nEach QCFS checkpoint was fine-tuned from the ReLU one by the command recorded in "
        + "its `checkpoint.json` (`lava_retrieval/pretrained/`)."
    )


EXACT = "sweep-qcfs-exact_count-integrated"
# Issue targets for binary spikes against the shipped ReLU ANN: T -> largest gap in
# classification and top-1 (and in mAP at T = 16).
EXACT_TARGETS = {16: 0.3, 8: 0.6, 4: 1.5}


def exact_count() -> str:
    result = _load(f"{EXACT}.json")
    own = _ann(result)
    relu = _ann(_load(f"{SWEEPS[0][0]}.json"))
    rows = [
        "| T | chip steps per image | classification | top-1 | top-3 | mAP | below its ANN "
        "(cls. / top-1 / mAP) | below the ReLU ANN (cls. / top-1 / mAP) | target met |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in result["rows"]:
        if not row["model"].startswith("SNN("):
            continue
        t = int(row["model"][4:-1])
        gaps = {m: relu[m] - row[m] for m in ("classification", "top1", "mAP")}
        own_gaps = " / ".join(f"{own[m] - row[m]:.2f}" for m in ("classification", "top1", "mAP"))
        relu_gaps = " / ".join(f"{gaps[m]:.2f}" for m in ("classification", "top1", "mAP"))
        met = _met(_binary_target(relu, row, t))
        rows.append(
            f"| {t} | {_chip_steps(result, t)} | {row['classification']:.2f} | "
            f"{row['top1']:.2f} | "
            f"{row['top3']:.2f} | {row['mAP']:.2f} | {own_gaps} | {relu_gaps} | {met} |"
        )
    p = result["protocol"]
    return (
        "\n".join(rows)
        + "\n\nThe QCFS network (`results/snn-32-64-10-qcfs16.npz`), `exact_count` timing, "
        + f"integrated readout; corpus {p['corpus']:,} training images, {p['queries']:,} test "
        + f"queries; percent. Its ANN (QCFS, 16 levels): {own['classification']:.2f} / "
        + f"{own['top1']:.2f} / {own['mAP']:.2f}; the shipped ReLU ANN: "
        + f"{relu['classification']:.2f} / {relu['top1']:.2f} / {relu['mAP']:.2f}. Targets "
        + "(binary spikes, against the ReLU ANN): within 0.3 points in classification and "
        + "top-1 and 1.0 in mAP at T = 16, 0.6 at T = 8, 1.5 at T = 4. From "
        + f"`results/{EXACT}.json`, produced by `bash scripts/low_latency.sh`."
    )


GRADED = "sweep-qcfs-graded-integrated"


def graded() -> str:
    result, exact = _load(f"{GRADED}.json"), _load(f"{EXACT}.json")
    own = _ann(result)
    rows = [
        "| levels (T) | steps per image | latency (steps) | classification | top-1 | top-3 | mAP "
        "| below its ANN (cls. / top-1 / mAP) | the same as `exact_count` at T |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    metrics = ("classification", "top1", "top3", "mAP")
    for row in result["rows"]:
        if not row["model"].startswith("SNN("):
            continue
        t = int(row["model"][4:-1])
        same = all(row[m] == _snn(exact, t)[m] for m in metrics)
        gaps = " / ".join(f"{own[m] - row[m]:.2f}" for m in ("classification", "top1", "mAP"))
        rows.append(
            f"| {t} | 1 | {_chip_steps(result, t)} | {row['classification']:.2f} | "
            f"{row['top1']:.2f} | "
            f"{row['top3']:.2f} | {row['mAP']:.2f} | {gaps} | {'yes' if same else 'no'} |"
        )
    return (
        "\n".join(rows)
        + "\n\nThe QCFS network with graded spikes, integrated readout, the same protocol; "
        + "target: within 0.1 of its ANN at 4 steps per image or fewer. From "
        + f"`results/{GRADED}.json`, produced by `bash scripts/low_latency.sh`."
    )


def sdnn() -> str:
    """The sigma-delta method: accuracy against its ANNs, latency, energy, speed."""
    tuned, converted = _load("eval-qcfs8-sdnn.json"), _load("eval-qcfs8-sdnn-converted-only.json")
    source = _ann(converted)  # the qcfs8-analog ANN, the fine-tuning's start
    metrics = ("classification", "top1", "top3", "mAP")
    rows = [
        "| network | classification | top-1 | top-3 | mAP | below the qcfs8-analog ANN "
        "(cls. / top-1 / mAP) | below its own ANN |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    entries = (
        ("ANN `32-64-10-qcfs8a` (QCFS, 8 levels; `qcfs8-analog`'s)", source, None),
        ("converted from it for sigma-delta neurons, not retrained", _snn(converted, 1), source),
        ("ANN `32-64-10-qcfs8s` (fine-tuned with the conversion in the loop)", _ann(tuned), None),
        ("**`qcfs8-sdnn`**: converted from it (the shipped method)", _snn(tuned, 1), _ann(tuned)),
    )
    for what, row, own in entries:
        cells = " | ".join(f"{row[m]:.2f}" for m in metrics)
        below = _gaps(source, row) if row is not source else "—"
        mine = _gaps(own, row) if own is not None else "—"
        rows.append(f"| {what} | {cells} | {below} | {mine} |")
    energy = next(r for r in _load("energy.json")["result"]["rows"] if r["method"] == "qcfs8-sdnn")
    counts, estimate = energy["counts"], energy["estimate"]
    bench = _load("bench-sdnn.json")
    speed = bench["rows"]
    lava_conv = speed["loihi, Lava's own Conv model"]
    reset = speed["loihi, reset mode (Lava 0.10's own models)"]
    p = tuned["protocol"]
    met = max(_ann(tuned)[m] - _snn(tuned, 1)[m] for m in ("classification", "top1")) <= 0.3
    met = met and _ann(tuned)["mAP"] - _snn(tuned, 1)["mAP"] <= 0.5
    return (
        "\n".join(rows)
        + f"\n\nCorpus {p['corpus']:,} training images, {p['queries']:,} test queries; percent; "
        + "the embedding is the embedding layer's messages. Target (classification and top-1 "
        + "within 0.3 of the ANN, mAP within 0.5): "
        + ("met" if met else "not met")
        + "; the graded-spike target the `qcfs8-analog-graded` method misses (within 0.1 of its "
        + "own ANN in classification, top-1 and mAP): "
        + _met(
            max(_ann(tuned)[m] - _snn(tuned, 1)[m] for m in ("classification", "top1", "mAP")) - 0.1
        )
        + f". Latency: {counts['steps']} chip steps per image (one a layer; streamed, one image "
        + f"enters per step). Per image: {counts['spikes']:,.0f} messages, "
        + f"{counts['synaptic_ops'] / 1e6:.2f} M synaptic operations, "
        + f"{counts['neuron_updates']:,.0f} neuron updates; the Loihi model's "
        + f"{estimate['total_mj']:.2f} mJ ({estimate['dynamic_mj']:.3f} mJ dynamic; a graded "
        + "message costed like a spike: an assumption, see the energy notes). On "
        + f"{bench['machine']['cpus']} CPU cores: `--backend loihi` streams "
        + f"{speed['loihi']['images_per_second']:.0f} images/s (Lava's own `Conv` model: "
        + f"{lava_conv['images_per_second']:.0f}; the reset mode "
        + f"{reset['images_per_second']:.1f}), "
        + f"the simulator {speed['sim']['images_per_second']:,.0f}, the project's Lava graph "
        + f"{speed['lava']['images_per_second']:.0f}; a resident Loihi-path query "
        + f"{bench['resident']['median_ms']:.0f} ms. From `results/eval-qcfs8-sdnn.json` "
        + "(`lava-retrieval evaluate --method qcfs8-sdnn --out-dir results --stem "
        + "eval-qcfs8-sdnn`),"
        + " `results/eval-qcfs8-sdnn-converted-only.json` (the same with `--checkpoint "
        + "lava_retrieval/pretrained/32-64-10-qcfs8a --stem eval-qcfs8-sdnn-converted-only`), "
        + "`results/energy.json` (`lava-retrieval reproduce --only energy`) and "
        + "`results/bench-sdnn.json` (`python benchmarks/sdnn_loihi.py`)."
    )


def methods() -> str:
    """Every method of the registry (``lava_retrieval.conversion.methods.METHODS``): its T,
    timing, readout and where it runs, as ``lava-retrieval methods`` says."""
    from lava_retrieval.backends import registry
    from lava_retrieval.cli.methods import EXPORTS, capabilities
    from lava_retrieval.conversion.methods import DEFAULT_METHOD, METHODS

    simulated = [name for name in registry.names() if not registry.BACKENDS[name].hardware]
    lines = [
        "| method | T | timing | readout | runs on | exports | what it is |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, method in METHODS.items():
        can = capabilities(method)
        lines.append(
            f"| `{name}`{' (default)' if name == DEFAULT_METHOD else ''} | "
            f"{'/'.join(map(str, method.time_steps))} | `{method.timing}` | `{method.readout}` | "
            f"{', '.join(b for b in simulated if can[b] is None)} | "
            f"{', '.join(e for e in EXPORTS if can[e] is None) or '—'} | {method.description} |"
        )
    return (
        "\n".join(lines)
        + "\n\nFrom the method registry (`lava_retrieval.conversion.methods.METHODS`); "
        + "`lava-retrieval methods` gives the reason for every backend and export a method "
        + "cannot use (`loihi-hw` runs what `loihi` runs, where Intel's lava-loihi is installed)."
    )


def reproduction() -> str:
    """Headline rows of results/REPRODUCTION.md (from the files `lava-retrieval reproduce`
    wrote)."""
    table1 = _load("table1.json")
    fig4 = _load("fig4.json")["result"]
    runtime = _load("runtime.json")["result"]
    energy = _load("energy.json")["result"]
    steps = table1["result"]["time_steps"]
    rows = [
        "| architecture | ANN test | paper | "
        + " | ".join(f"SNN T={t}" for t in steps)
        + " | paper SNN | Loihi cores |",
        "| --- | ---: | ---: | " + "---: | " * len(steps) + "---: | ---: |",
    ]
    for row in table1["result"]["rows"]:
        ref = paper.TABLE1[row["arch"]]
        snn = " | ".join(f"{row['snn'][str(t)]:.2f}" for t in steps)
        cores = f"{row['cores']}" + ("" if row["deployable"] else " (does not fit)")
        ref_snn = "N/A" if ref[3] is None else f"{ref[3]:.2f}"
        rows.append(
            f"| {row['arch']} | {row['test']:.2f} | {ref[2]:.2f} | {snn} | {ref_snn} | {cores} |"
        )
    summary = fig4["summary"]
    fig4_line = ", ".join(
        f"T = {t}: {summary[f'SNN({t})']['classification']['mean']:.2f} ± "
        f"{summary[f'SNN({t})']['classification']['std']:.2f}"
        for t in (16, 128)
        if f"SNN({t})" in summary
    )
    by = {(r["model"], r["batch_size"], r["time_steps"]): r["ms"] for r in runtime["rows"]}
    ann1 = next(r["ms"] for r in runtime["rows"] if r["model"] == "ann" and r["batch_size"] == 1)
    check = next(c for c in energy["checks"] if c["time_steps"] == 16)
    from lava_retrieval.reproduce.steps import STEPS

    steps = ["table2-reproduce" if step == "table2" else step for step in STEPS]
    records = [_load(f"{step}.json") for step in steps]
    run_minutes = sum(r["seconds"] for r in records) / 60
    checkpoints = sorted((ROOT / "checkpoints").glob("*/checkpoint.json"))
    train_minutes = (
        sum(h["seconds"] for c in checkpoints for h in json.loads(c.read_text())["history"]) / 60
    )
    best = min(energy["rows"], key=lambda r: r["estimate"]["total_mj"])
    return (
        "\n".join(rows)
        + "\n\nTable 1 (percent; the paper's columns from its Table 1; every network trained "
        + f"{table1['result']['rows'][0]['epochs']} epochs, seed 0). Fig 4: SNN classification "
        + f"over {len(fig4['seeds'])} networks (mean ± std) {fig4_line}; their ANNs "
        + f"{summary['ANN']['classification']['mean']:.2f} ± "
        + f"{summary['ANN']['classification']['std']:.2f}. Table 3 on this machine, batch 1, "
        + f"T = 16: Lava process graph {by[('lava', 1, 16)]:.3g} ms, fast simulator "
        + f"{by[('sim', 1, 16)]:.3g} ms, ANN {ann1:.3g} ms per example (paper, Loihi: "
        + f"{paper.loihi_row(16)['ms']} ms). Tables 4/5: the Loihi energy model gives "
        + f"{check['model_total_mj']:.3f} mJ per example at T = 16 against the paper's measured "
        + f"{check['paper_total_mj']} mJ; {best['label']} at T = {best['time_steps']}: "
        + f"{best['estimate']['total_mj']:.3f} mJ. From `results/table1.json`, "
        + "`results/fig4.json`, `results/runtime.json`, `results/energy.json`, produced by "
        + f"`lava-retrieval reproduce`, which took {run_minutes:.0f} minutes in all on "
        + f"{table1['machine']['cores']} cores (the steps' recorded times); training the "
        + f"{len(checkpoints)} networks of `checkpoints/` took {train_minutes:.0f} minutes "
        + "(their recorded epoch times, partly while other work shared the cores)."
    )


BLOCKS = {
    "methods": methods,
    "shipped-ann": shipped_ann,
    "reproduction": reproduction,
    "conversion": conversion,
    "lava-graph": lava_graph,
    "table2": table2,
    "table2-variants": table2_variants,
    "bench-sim": bench_sim,
    "low-latency": low_latency,
    "targets": targets,
    "exact-count": exact_count,
    "graded": graded,
    "analog": analog,
    "bench-methods": bench_methods,
    "bench-web": bench_web,
    "bench-index": bench_index,
    "qcfs8-training": qcfs8_training,
    "bench-loihi-stream": bench_loihi_stream,
    "sdnn": sdnn,
    "bench-ann": bench_ann,
    "bench-ann-1m": bench_ann_1m,
    "bench-service": bench_service,
    "bench-memory": bench_memory,
}


def render(text: str) -> str:
    """``text`` with every known block re-rendered."""
    for name, build in BLOCKS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README has no block {name}")
        text = pattern.sub(lambda m, b=build: m.group(1) + b() + "\n" + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    readme = ROOT / "README.md"
    current = readme.read_text()
    rendered = render(current)
    if "--check" in argv:
        if rendered != current:
            print("README.md is stale: run python scripts/render_readme.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
