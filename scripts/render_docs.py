"""Render the result blocks of the README and of the documentation site from the committed files
under results/.

Every number the README and the site (``docs/``) quote comes from a result file produced by the
command written next to it; this script only formats them. ``python scripts/render_docs.py``
rewrites the blocks between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` in ``README.md`` and
every page under ``docs/``; ``--check`` exits 1 when one is stale.
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
from docs_blocks import (  # noqa: E402  (the site's blocks rendered from the code)
    cli_reference,
    headline,
    http_reference,
    method_tradeoffs,
)
from readme_benchmarks import (  # noqa: E402  (the benchmark blocks, beside this script)
    _load,
    bench_ann,
    bench_ann_1m,
    bench_catalogue,
    bench_index,
    bench_loihi_stream,
    bench_memory,
    bench_methods,
    bench_service,
    bench_sharded,
    bench_sim,
    bench_web,
)
from readme_low_latency import (  # noqa: E402  (the blocks on fewer time steps)
    _ann,
    _gaps,
    _met,
    _snn,
    analog,
    exact_count,
    graded,
    low_latency,
    qcfs8_training,
    targets,
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
    "cli-reference": cli_reference,
    "http-reference": http_reference,
    "method-tradeoffs": method_tradeoffs,
    "headline": headline,
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
    "bench-catalogue": bench_catalogue,
    "bench-sharded": bench_sharded,
    "bench-memory": bench_memory,
}


def pages() -> list[Path]:
    """The files whose blocks are rendered: the README and every page of the site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def render(text: str, blocks: dict | None = None, up: str = "") -> str:
    """``text`` with every known block it holds re-rendered (an unknown block is an error).
    ``up`` leads each link into ``results/`` from a page below the root (``"../"``: a page
    one folder down in ``docs/``, where the site serves ``results/`` at its root)."""
    blocks = BLOCKS if blocks is None else blocks
    for name in re.findall(r"<!-- BEGIN ([\w-]+) -->", text):
        if name not in blocks:
            raise SystemExit(f"no renderer for block {name}")
    for name, build in blocks.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
        if pattern.search(text):
            text = pattern.sub(
                lambda m, b=build: m.group(1) + _linked(b(), up) + "\n" + m.group(2), text
            )
    return text


def _linked(block: str, up: str) -> str:
    return block.replace("](results/", f"]({up}results/")


def _up(page: Path) -> str:
    """How a page reaches the site's root: ``""`` for the README and ``docs/``'s top pages."""
    if page.parent == ROOT:
        return ""
    return "../" * (len(page.relative_to(ROOT / "docs").parts) - 1)


def stale() -> list[Path]:
    """The pages whose blocks are not what the results render (every block must be shown
    somewhere)."""
    shown: set[str] = set()
    out = []
    for page in pages():
        text = page.read_text()
        shown.update(re.findall(r"<!-- BEGIN ([\w-]+) -->", text))
        if render(text, up=_up(page)) != text:
            out.append(page)
    missing = set(BLOCKS) - shown
    if missing:
        raise SystemExit(f"blocks no page shows: {', '.join(sorted(missing))}")
    return out


def main(argv: list[str]) -> int:
    if "--check" in argv:
        out = stale()
        for page in out:
            print(
                f"{page.relative_to(ROOT)} is stale: run python scripts/render_docs.py",
                file=sys.stderr,
            )
        return 1 if out else 0
    for page in pages():
        current = page.read_text()
        rendered = render(current, up=_up(page))
        if rendered != current:
            page.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
