"""The site's reference blocks rendered from the code (:mod:`render_docs` renders them): the
command line from the argparse parsers, the HTTP API from the OpenAPI document the service
serves."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from lava_retrieval.apps.openapi import document
from lava_retrieval.cli import build_parser
from lava_retrieval.cli.options import DefaultsFormatter

ROOT = Path(__file__).resolve().parent.parent


def _commands(parser: argparse.ArgumentParser, prefix: str):
    """``(name, parser)`` of every command under ``parser``, in the order of ``--help``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                sub = action.choices[choice.dest]
                name = f"{prefix} {choice.dest}"
                yield name, sub, choice.help
                yield from _commands(sub, name)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _option(action: argparse.Action) -> tuple[str, str]:
    if action.option_strings:
        flags = ", ".join(f"`{f}`" for f in action.option_strings)
        if action.nargs != 0:
            flags += f" `{action.metavar or action.dest.upper()}`"
    else:
        flags = f"`{action.metavar or action.dest}`"
    formatter = DefaultsFormatter("x")
    text = formatter._expand_help(action) if action.help else ""
    if action.choices and not isinstance(action, argparse._SubParsersAction):
        choices = ", ".join(f"`{c}`" for c in action.choices)
        text = f"{text} (one of {choices})" if text else f"one of {choices}"
    if action.required and action.option_strings:
        text = f"**required**; {text}"
    return flags, _cell(text)


def cli_reference() -> str:
    """Every command of ``lava-retrieval``, its usage and every option with its default."""
    top = build_parser()
    out = []
    width = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps the usage at the terminal's width
    try:
        usages = {name: p.format_usage() for name, p, _ in _commands(top, "lava-retrieval")}
    finally:
        os.environ.pop("COLUMNS") if width is None else os.environ.update(COLUMNS=width)
    for name, parser, summary in _commands(top, "lava-retrieval"):
        usage = "\n".join(line.removeprefix("       ") for line in usages[name].splitlines())
        usage = usage.removeprefix("usage: ").strip()
        out += [f"### `{name}`", "", _cell(summary or parser.description or ""), ""]
        out += ["```text", usage, "```", ""]
        actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
        actions = [a for a in actions if not isinstance(a, argparse._SubParsersAction)]
        if actions:
            out += ["| argument | what it is |", "| --- | --- |"]
            out += [f"| {f} | {t} |" for f, t in map(_option, actions)]
            out.append("")
    return "\n".join(out).rstrip()


def http_reference() -> str:
    """Every operation of the service with its fields and statuses, then the document."""
    doc = document()
    out = ["| method | path | what it does | statuses |", "| --- | --- | --- | --- |"]
    for path, item in doc["paths"].items():
        for method in ("get", "post", "put", "delete"):
            if method in item:
                op = item[method]
                statuses = ", ".join(op["responses"])
                out.append(
                    f"| `{method.upper()}` | `{path}` | {_cell(op['summary'])} | {statuses} |"
                )
    out += ["", "Request fields:", "", "| operation | field | type | what it is |"]
    out.append("| --- | --- | --- | --- |")
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "requestBody" not in op:
                continue
            for kind, content in op["requestBody"]["content"].items():
                for field, schema in content["schema"]["properties"].items():
                    out.append(
                        f"| `{method.upper()} {path}` ({kind}) | `{field}` | {_type(schema)} | "
                        f"{_cell(schema.get('description', ''))} |"
                    )
    text = json.dumps(doc, indent=2)
    out += ["", '??? note "The whole document (`GET /api/openapi.json`)"', "", "    ```json"]
    out += [f"    {line}" for line in text.splitlines()]
    out.append("    ```")
    return "\n".join(out)


def _type(schema: dict) -> str:
    kind = schema.get("type", "")
    if kind == "integer" and "minimum" in schema:
        high = schema.get("maximum")
        return f"integer ≥ {schema['minimum']}" + (f", ≤ {high:,}" if high is not None else "")
    if kind == "array":
        return f"list of {schema['items'].get('type', 'values')}"
    if "enum" in schema:
        return " or ".join(f"`{v}`" for v in schema["enum"])
    return kind


def _energy() -> tuple[dict, dict]:
    """``results/energy.json`` and its rows by (method, T)."""
    energy = json.loads((ROOT / "results" / "energy.json").read_text())
    return energy, {(r["method"], r["time_steps"]): r for r in energy["result"]["rows"]}


def method_tradeoffs() -> str:
    """Each method of the registry at its T: accuracy, latency in chip steps, the Loihi energy
    model's estimate per image and where it runs, from ``results/energy.json`` (``lava-retrieval
    reproduce --only energy``)."""
    from lava_retrieval.backends import registry
    from lava_retrieval.cli.methods import capabilities
    from lava_retrieval.conversion.methods import DEFAULT_METHOD, METHODS

    energy, rows = _energy()
    images = energy["result"]["rows"][0]["counts"]["images"]
    simulated = [name for name in registry.names() if not registry.BACKENDS[name].hardware]
    out = [
        "| method | T | timing | classification | top-1 | mAP | chip steps per image | "
        "energy per image (Loihi model) | runs on |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, method in METHODS.items():
        for steps in method.time_steps[:1]:
            row = rows.get((name, steps))
            if row is None:
                raise SystemExit(f"results/energy.json has no row for {name} at T = {steps}")
            acc, estimate = row["accuracy"], row["estimate"]
            where = ", ".join(b for b in simulated if capabilities(method)[b] is None)
            out.append(
                f"| `{name}`{' (default)' if name == DEFAULT_METHOD else ''} | {steps} | "
                f"`{method.timing}` | {acc['classification']:.2f} | {acc['top1']:.2f} | "
                f"{acc['mAP']:.2f} | {row['counts']['steps']} | {estimate['total_mj']:.2f} mJ "
                f"({estimate['dynamic_mj']:.3f} dynamic) | {where} |"
            )
    return "\n".join(out) + (
        "\n\nEach method at its first T (`lava-retrieval methods`): accuracy in percent "
        "(classification by the network's output, top-1 retrieval, mAP; protocol "
        f"{energy['plan']}); chip steps and energy per image from the "
        "Loihi model (`lava_retrieval.evaluation.energy`: the simulator's exact counts of "
        f"synaptic operations and neuron updates, {images:,} images, with published "
        "per-operation energies). From `results/energy.json`, produced "
        "by `lava-retrieval reproduce --only energy`; the registry is "
        "`lava_retrieval.conversion.methods.METHODS`."
    )


def headline() -> str:
    """The headline: the ANN, the paper's method and this package's methods on the paper's
    protocol, and search at a million images."""
    from lava_retrieval.conversion.methods import DEFAULT_METHOD

    def load(name: str) -> dict:
        return json.loads((ROOT / "results" / name).read_text())

    table2, ann_1m = load("table2.json"), load("bench-ann-1m.json")
    energy, rows = _energy()
    ann = next(r for r in table2["rows"] if r["model"] == "ANN")
    shown = [
        ("paper", 16, "Liu et al.'s method (Algorithm 1, Lava's timing), reproduced"),
        (DEFAULT_METHOD, 8, "the default method: QCFS-trained, analog input, exact-count schedule"),
        ("qcfs8-sdnn", 1, "sigma-delta, on Lava's own Loihi 2 processes"),
    ]
    out = [
        "| network | T | classification | top-1 | mAP | chip steps per image | energy per image |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| the ANN (32-64-10, ReLU) | — | {ann['classification']:.2f} | {ann['top1']:.2f} | "
        f"{ann['mAP']:.2f} | — | — |",
    ]
    for method, steps, label in shown:
        row = rows[(method, steps)]
        acc = row["accuracy"]
        out.append(
            f"| `{method}`: {label} | {steps} | {acc['classification']:.2f} | {acc['top1']:.2f} | "
            f"{acc['mAP']:.2f} | {row['counts']['steps']} | {row['estimate']['total_mj']:.2f} mJ |"
        )
    best = ann_1m["best_at_target_recall"]
    target = ann_1m["target"]["recall"]
    hit = next(r for r in ann_1m["rows"] if r["index"] == best["index"] and r["recall"] >= target)
    return "\n".join(out) + (
        f"\n\nPercent, on the paper's protocol ({energy['plan']}); energy from the Loihi model "
        "(`lava_retrieval.evaluation.energy`). From `results/table2.json` "
        "(`lava-retrieval reproduce --only table2`) and `results/energy.json` "
        "(`lava-retrieval reproduce --only energy`). "
        f"At {ann_1m['corpus']:,} images, a {best['index']} index (faiss) answers "
        f"{hit['qps']:,.0f} queries/s at recall@10 {hit['recall']:.3f}, "
        f"{hit['speed_up']:.0f}× the exact search, on {ann_1m['machine']['cpus']} CPU cores "
        "(`results/bench-ann-1m.json`, `python benchmarks/ann_search.py --corpus 1000000 "
        "--out results/bench-ann-1m.json`)."
    )
