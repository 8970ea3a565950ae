"""The README's blocks on fewer time steps (:mod:`render_docs` renders them): the sweeps of the
low-latency methods, their targets, the exact-count schedule, graded spikes and the analog
input, each formatted from files of ``results/`` written by the command named next to it."""

from __future__ import annotations

import json

from readme_benchmarks import ROOT, _load

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
