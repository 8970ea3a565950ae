"""Every table and figure of Liu et al. 2022 regenerated from committed checkpoints, beside the
paper's numbers: ``lava-retrieval reproduce`` (``make reproduce``).

Steps (each writes its files into the output directory and records the key of its inputs):

``table1``  the twelve architectures (``checkpoints/<arch>``; 32-64-10 is
            ``checkpoints/32-64-10-seed0``): ANN train / validation / test accuracy from the
            checkpoint, SNN test classification with Algorithm 1 and Lava's timing at T = 128 and
            16, Loihi cores and deployability (:func:`lava_retrieval.loihi.resources.check`).
``fig3``    the core map of the shipped 32-64-10 network (the paper's method).
``table2``  ANN vs SNN(16), SNN(128) of the shipped 32-64-10 network on the full protocol.
``fig4``    SNN(T) for T = 4 ... 128 of five 32-64-10 networks (seeds 0-4), mean +- standard
            deviation, the ANNs' mean as a reference line.
``sweeps``  the default method (``qcfs8-analog``: the QCFS ANN trained at 8 levels, an analog
            input, the exact-count schedule, integrated readout) against T = 1 ... 32 on the
            full protocol, beside its ANN:
            ``sweep-qcfs8-analog-exact_count-integrated.{json,csv,md}``, whose accuracies the
            energy step quotes.
``runtime`` Fig 5 and Table 3: per-example latency of the ANN (torch), the fast simulator and the
            Lava process graph on this machine, batch 1 and a large batch, against T.
``energy``  Tables 4 and 5: the machine's measured energy where it exposes counters, and the Loihi
            energy model (:mod:`lava_retrieval.evaluation.energy`) checked against the paper's
            measurement and applied to the default method (accuracies from ``table2`` and
            ``sweeps`` in the same output directory).
``fig6``    the retrieval grid (query | three images of its class | ANN top-3 | SNN top-3).

A step whose files exist with the same key (settings, checkpoints' hashes, package version) is
skipped; ``force`` redoes it. Units of work inside a step (one architecture, one seed) are kept
under ``parts/`` so that an interrupted run continues where it stopped. ``REPRODUCTION.md`` is
rendered from the files at the end of every run.

Every step runs the full protocol. Fig 4, Table 2 and the sweeps simulate each set of images once
for all their T where the timing allows (:func:`lava_retrieval.engines.sim.simulate_at`: under
Lava's timing a run of T steps is the prefix of a longer one), so Fig 4 searches the whole
60,000-image corpus.

``quick`` (:meth:`Plan.quick`) runs the same steps on fewer images (500 test queries, a 2,000-image
corpus, 500 calibration images, fewer repeats) into ``runs/reproduce-quick``: minutes instead of
about 70 minutes, for checking that everything runs, not for its numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from dataclasses import asdict
from pathlib import Path

from lava_retrieval.common.atomic import write_text
from lava_retrieval.common.locking import exclusive
from lava_retrieval.conversion.methods import DEFAULT_METHOD as DEFAULT
from lava_retrieval.conversion.methods import METHODS, get
from lava_retrieval.evaluation import paper
from lava_retrieval.reproduce.context import (
    COMMAND,
    FIG4_METRICS,
    Context,
    Plan,
    ReproduceError,
    _cached,
    _key,
    _record,
    _save,
    _sha,
    load,
)
from lava_retrieval.reproduce.figures import plot_fig4, plot_fig5

PAPER = METHODS["paper"]
SWEEP_STEM = f"sweep-{DEFAULT}-{METHODS[DEFAULT].timing}-{METHODS[DEFAULT].readout}"

STEPS = ("table1", "fig3", "table2", "fig4", "sweeps", "runtime", "energy", "fig6")


def _snn_classification(network, images, labels, time_steps: int) -> float:
    from lava_retrieval.engines.sim import simulate
    from lava_retrieval.search.metrics import classification_accuracy, predict_classes

    result = simulate(network, images, PAPER.sim_config(time_steps), layers=(-1,))
    predicted = predict_classes(result.spike_counts[-1], result.membrane[-1])
    return 100 * classification_accuracy(predicted, labels)


# --- Table 1 ---------------------------------------------------------------------------------


def step_table1(ctx: Context) -> dict:
    from tqdm.auto import tqdm

    from lava_retrieval.loihi import resources as loihi

    plan = ctx.plan
    images, labels = ctx.queries()
    rows = []
    for arch in tqdm(plan.archs, desc="table 1", unit="arch", disable=not ctx.progress):
        checkpoint = load(ctx.checkpoint_dir(arch))
        settings = [plan.table1_steps, plan.queries, plan.calibration]
        key = _key("table1", arch, _sha(checkpoint), settings)
        part = ctx.out_dir / "parts" / f"table1-{arch}.json"
        row = _cached(part, key, ctx.force)
        if row is None:
            start = time.perf_counter()
            network = ctx.network(checkpoint)
            report = loihi.check(network)
            final = checkpoint.final
            row = _save(
                part,
                {
                    "key": key,
                    "arch": arch,
                    "epochs": len(checkpoint.history),
                    "command": checkpoint.meta.get("command"),
                    "train": final.get("train_accuracy"),
                    "validation": final.get("validation_accuracy"),
                    "test": final.get("test_accuracy"),
                    "snn": {
                        str(t): round(_snn_classification(network, images, labels, t), 4)
                        for t in plan.table1_steps
                    },
                    "cores": report.total_cores,
                    "deployable": report.deployable,
                    "reason": report.reason,
                    "max_fan_in": max(layer.fan_in for layer in report.layers),
                    "seconds": round(time.perf_counter() - start, 1),
                },
            )
        rows.append(row)
    return {"rows": rows, "queries": len(images), "time_steps": list(plan.table1_steps)}


# --- Fig 3 and Table 2 -----------------------------------------------------------------------


def _shipped():
    """The shipped 32-64-10 ANN (the paper's method)."""

    return get("paper").checkpoint()


def step_fig3(ctx: Context) -> dict:
    from lava_retrieval.loihi import resources as loihi

    checkpoint = _shipped()
    report = loihi.check(ctx.network(checkpoint))
    figure = loihi.plot_core_map(
        report,
        ctx.out_dir / "fig3-core-map.png",
        title="32-64-10 (shipped ANN, Algorithm 1) on one Loihi chip (paper: Fig 3)",
    )
    return {"figure": figure.name, "report": report.to_dict()}


def step_table2(ctx: Context) -> dict:
    from lava_retrieval.evaluation import table2 as experiments

    checkpoint = _shipped()
    result = experiments.table2(
        ctx.network(checkpoint),
        checkpoint.model,
        ctx.data,
        [PAPER.sim_config(t) for t in PAPER.time_steps],
        limit_corpus=ctx.plan.corpus,
        limit_queries=ctx.plan.queries,
        progress=ctx.progress,
    )
    result["command"] = [*COMMAND.split(), "--only", "table2"]
    experiments.write(result, ctx.out_dir, "table2")
    return result


# --- Fig 4 -----------------------------------------------------------------------------------


def _smaller(a: int | None, b: int | None) -> int | None:
    """The smaller of two limits (None: no limit)."""
    return b if a is None else a if b is None else min(a, b)


def step_fig4(ctx: Context) -> dict:
    from tqdm.auto import tqdm

    from lava_retrieval.evaluation import table2 as experiments

    plan = ctx.plan
    per_seed = []
    for seed in tqdm(plan.seeds, desc="fig 4", unit="network", disable=not ctx.progress):
        checkpoint = load(ctx.checkpoint_dir("32-64-10", seed))
        corpus = _smaller(plan.fig4_corpus, plan.corpus)
        key = _key(
            "fig4", seed, _sha(checkpoint), plan.sweep_steps, corpus, plan.queries, plan.calibration
        )
        part = ctx.out_dir / "parts" / f"fig4-seed{seed}.json"
        result = _cached(part, key, ctx.force)
        if result is None:
            result = experiments.table2(
                ctx.network(checkpoint),
                checkpoint.model,
                ctx.data,
                [PAPER.sim_config(t) for t in plan.sweep_steps],
                limit_corpus=corpus,
                limit_queries=plan.queries,
                progress=False,
            )
            result = _save(
                part, {"key": key, "seed": seed, "epochs": len(checkpoint.history), **result}
            )
        per_seed.append(result)
    summary = {}
    for model in [r["model"] for r in per_seed[0]["rows"]]:
        rows = [next(r for r in s["rows"] if r["model"] == model) for s in per_seed]
        summary[model] = {
            key: {
                "mean": round(statistics.fmean(r[key] for r in rows), 4),
                "std": round(statistics.stdev(r[key] for r in rows), 4) if len(rows) > 1 else 0.0,
            }
            for key, _ in FIG4_METRICS
        }
    figure = plot_fig4(summary, len(per_seed), ctx.out_dir / "fig4-time-steps.png")
    return {
        "seeds": list(plan.seeds),
        "epochs": [s["epochs"] for s in per_seed],
        "corpus": per_seed[0]["protocol"]["corpus"],
        "queries": per_seed[0]["protocol"]["queries"],
        "summary": summary,
        "figure": figure.name,
    }


# --- Fig 5, Table 3 --------------------------------------------------------------------------


def step_runtime(ctx: Context) -> dict:
    from tqdm.auto import tqdm

    from lava_retrieval.evaluation.latency import ann_latency, lava_latency, sim_latency

    plan = ctx.plan
    checkpoint = _shipped()
    network = ctx.network(checkpoint)
    images, _ = ctx.data.split("test")
    devices = ["cpu"] + ([ctx.device] if ctx.device != "cpu" else [])
    rows = []
    work: list[tuple[str, str, int, int | None]]
    work = [("ann", d, b, None) for d in devices for b in (1, plan.large_batch)]
    work += [
        ("sim", d, b, t) for d in devices for t in plan.runtime_steps for b in (1, plan.large_batch)
    ]
    work += [("lava", "cpu", 1, t) for t in plan.runtime_steps]
    for kind, device, batch, steps in tqdm(work, desc="runtime", disable=not ctx.progress):
        if kind == "ann":
            row = ann_latency(checkpoint.model, images, batch, repeats=plan.repeats, device=device)
        elif kind == "sim":
            row = sim_latency(
                network,
                images,
                PAPER.sim_config(steps),
                batch_size=batch,
                repeats=plan.repeats,
                device=device,
            )
        else:
            row = lava_latency(
                network,
                images,
                PAPER.sim_config(steps),
                images_per_run=plan.lava_images,
                repeats=plan.repeats,
            )
        rows.append({**row, "model": kind, "device": device, "time_steps": steps})
    figure = plot_fig5(rows, ctx.out_dir / "fig5-runtime.png")
    return {"rows": rows, "figure": figure.name, "timing": PAPER.timing}


# --- Tables 4 and 5 --------------------------------------------------------------------------

#: The spiking networks whose energy the model estimates: method, T, and the result file holding
#: their accuracy (relative to the output directory). Timing and label are the method's.
ENERGY_CASES = (
    ("paper", 16, "table2.json"),
    ("paper", 128, "table2.json"),
    *(("qcfs", t, "sweep-qcfs-pipelined-integrated.json") for t in (4, 8, 16)),
    *(("qcfs-exact", t, "sweep-qcfs-exact_count-integrated.json") for t in (4, 8, 16)),
    *(("qcfs-graded", t, "sweep-qcfs-graded-integrated.json") for t in (4, 8, 16)),
    *((DEFAULT, t, f"{SWEEP_STEM}.json") for t in (4, 8, 16)),
    *(("qcfs8-analog-graded", t, "sweep-qcfs8-analog-graded-spike_count.json") for t in (4, 8, 16)),
    ("qcfs4-analog", 4, "sweep-qcfs4-analog-exact_count-integrated.json"),
    ("qcfs8-sdnn", 1, "eval-qcfs8-sdnn.json"),
)


def step_energy(ctx: Context) -> dict:
    from tqdm.auto import tqdm

    from lava_retrieval.evaluation.energy import EnergyMeter, LoihiEnergyModel, op_counts

    model = LoihiEnergyModel()
    images, _ = ctx.data.split("test")
    images = images[: ctx.plan.energy_images]
    rows = []
    for name, steps, source in tqdm(ENERGY_CASES, desc="energy", disable=not ctx.progress):
        method = get(name)
        network = ctx.network(method.checkpoint(), name)
        counts = op_counts(network, images, method.sim_config(steps))
        accuracy = _accuracy_from(ctx.out_dir / source, steps)  # None: run that step first
        rows.append(
            {
                "label": method.label + (" (default)" if name == DEFAULT else ""),
                "method": name,
                "timing": method.timing,
                "time_steps": steps,
                "counts": counts,
                "estimate": model.estimate(counts),
                "accuracy": accuracy,
                "accuracy_file": source,
            }
        )
    checks = []
    for row in rows:
        if row["method"] == "paper":
            measured = paper.loihi_row(row["time_steps"])
            checks.append(
                {
                    "time_steps": row["time_steps"],
                    "model_total_mj": row["estimate"]["total_mj"],
                    "paper_total_mj": measured["mj"],
                    "model_dynamic_mj": row["estimate"]["dynamic_mj"],
                    "paper_dynamic_mj": measured["dynamic_w"] * measured["ms"],
                }
            )
    meters = {kind: EnergyMeter(kind).source for kind in ("cpu", "gpu")}
    return {
        "model": model.to_dict(),
        "rows": rows,
        "checks": checks,
        "meters": meters,
        "images": len(images),
    }


def _accuracy_from(path: Path, time_steps: int) -> dict | None:
    try:
        result = json.loads(path.read_text())
        row = next(r for r in result["rows"] if r["model"] == f"SNN({time_steps})")
    except (OSError, ValueError, KeyError, StopIteration):
        return None
    return {k: row[k] for k in ("classification", "top1", "top3", "mAP") if k in row}


# --- the default method against T -------------------------------------------------------


def step_sweeps(ctx: Context) -> dict:
    """The default method at every T of the plan (one part per T, so an interrupted run
    continues), written as ``SWEEP_STEM.{json,csv,md}``."""
    from lava_retrieval.evaluation import table2 as experiments

    checkpoint = get(DEFAULT).checkpoint()
    network = ctx.network(checkpoint, DEFAULT)
    parts = []
    for steps in ctx.plan.default_steps:
        part = ctx.out_dir / "parts" / f"sweeps-T{steps}.json"
        key = _key("sweeps", steps, asdict(ctx.plan), _sha(checkpoint))
        result = _cached(part, key, ctx.force)
        if result is None:
            result = experiments.table2(
                network,
                checkpoint.model,
                ctx.data,
                METHODS[DEFAULT].sim_config(steps),
                limit_corpus=ctx.plan.corpus,
                limit_queries=ctx.plan.queries,
                progress=ctx.progress,
            )
            result = _save(part, {"key": key, **result})
        parts.append(result)
    result = {k: v for k, v in parts[0].items() if k != "key"}
    result["rows"] = [parts[0]["rows"][0]] + [part["rows"][1] for part in parts]
    result["protocol"]["method"] = DEFAULT
    result["command"] = [*COMMAND.split(), "--only", "sweeps"]
    experiments.write(result, ctx.out_dir, SWEEP_STEM)
    return {"file": f"{SWEEP_STEM}.json", "protocol": result["protocol"], "rows": result["rows"]}


# --- Fig 6 -----------------------------------------------------------------------------------


def step_fig6(ctx: Context) -> dict:
    from lava_retrieval.apps import demo

    result = demo.run(
        out=ctx.out_dir / "fig6-retrieval.png",
        corpus_size=ctx.plan.corpus or 60000,
        time_steps=ctx.plan.fig6_steps,
        data_dir=ctx.data_dir,
        progress=ctx.progress,
        log=lambda _: None,
        method="paper",
    )
    result["figure"] = Path(result["figure"]).name
    result["time_steps"] = ctx.plan.fig6_steps
    return result


RUNNERS = {
    "table1": step_table1,
    "fig3": step_fig3,
    "table2": step_table2,
    "fig4": step_fig4,
    "runtime": step_runtime,
    "sweeps": step_sweeps,
    "energy": step_energy,
    "fig6": step_fig6,
}


def _step_key(ctx: Context, step: str) -> str:
    """What a step's result depends on: the plan, the checkpoints' hashes it reads, the device."""
    plan = asdict(ctx.plan)
    plan.pop("name")
    hashes = []
    if step == "table1":
        hashes = [str(ctx.checkpoint_dir(a)) for a in ctx.plan.archs]
    elif step == "fig4":
        hashes = [str(ctx.checkpoint_dir("32-64-10", s)) for s in ctx.plan.seeds]
    shas: list[str | None] = []
    for directory in hashes:
        meta = Path(directory) / "checkpoint.json"
        try:
            shas.append(json.loads(meta.read_text()).get("weights_sha256"))
        except (OSError, ValueError):
            shas.append(None)
    extra: object = ctx.device if step == "runtime" else None
    if step == "energy":  # the accuracies it quotes
        quoted = {_file_sha(ctx.out_dir / case[-1]) for case in ENERGY_CASES}
        extra = sorted(sha for sha in quoted if sha is not None)
    return _key(step, plan, shas, extra)


def _file_sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def reproduce(
    out_dir: str | os.PathLike = "results",
    plan: Plan | None = None,
    *,
    only: tuple[str, ...] | None = None,
    checkpoints: str | os.PathLike = "checkpoints",
    device: str = "cpu",
    force: bool = False,
    progress: bool = True,
    data_dir: str | None = None,
    log=print,
) -> dict:
    """Run the steps (all, or ``only``), skip those up to date, write ``REPRODUCTION.md``.

    Returns
    -------
    dict
        Step -> ``"done"`` or ``"up to date"``, and ``report``: the markdown file's path.

    >>> import tempfile
    >>> status = reproduce(tempfile.mkdtemp(), Plan.quick(), only=("fig3",), progress=False,
    ...                    log=lambda line: None)
    >>> status["fig3"]
    'done'
    """
    plan = plan or Plan()
    steps = tuple(only) if only else STEPS
    unknown = [s for s in steps if s not in RUNNERS]
    if unknown:
        raise ReproduceError(
            f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}"
        )
    if device != "cpu":
        import torch

        if not (device.startswith("cuda") and torch.cuda.is_available()):
            raise ReproduceError(f"device {device!r} is not available on this machine")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # One run at a time writes an output directory: a second fails at once.
    with exclusive(out, wait=0, what="reproducing into this directory"):
        ctx = Context(out, Path(checkpoints), plan, device, progress, force, data_dir)
        return _run(ctx, steps, log)


def _run(ctx: Context, steps: tuple[str, ...], log) -> dict:
    out, plan = ctx.out_dir, ctx.plan
    status = {}
    for step in steps:
        key = _step_key(ctx, step)
        path = out / f"{step}.json" if step != "table2" else out / "table2-reproduce.json"
        if _cached(path, key, ctx.force) is not None:
            status[step] = "up to date"
            log(f"{step}: up to date ({path})")
            continue
        log(f"{step}: running ...")
        start = time.perf_counter()
        result = RUNNERS[step](ctx)
        _save(path, _record(key, step, start, plan=plan.describe(), result=result))
        status[step] = "done"
        log(f"{step}: done in {time.perf_counter() - start:.0f} s")
    from lava_retrieval.reproduce.report import render

    report = out / "REPRODUCTION.md"
    write_text(report, render(out))
    status["report"] = str(report)
    return status
