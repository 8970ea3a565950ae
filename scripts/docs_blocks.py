"""The site's reference blocks rendered from the code (:mod:`render_docs` renders them): the
command line from the argparse parsers, the HTTP API from the OpenAPI document the service
serves."""

from __future__ import annotations

import argparse
import json
import os

from lava_retrieval.apps.openapi import document
from lava_retrieval.cli import build_parser
from lava_retrieval.cli.options import DefaultsFormatter


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
                out.append(f"| `{method.upper()}` | `{path}` | {_cell(op['summary'])} | {statuses} |")
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
