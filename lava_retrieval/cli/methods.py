"""``lava-retrieval methods``: every method, the backends and exports it can run on, and for
each it cannot, the reason."""

from __future__ import annotations

import argparse

from lava_retrieval.cli.options import add_command, emit

EXPORTS = ("netx", "nir")


def capabilities(method) -> dict[str, str | None]:
    """For each backend (:mod:`lava_retrieval.backends.registry`) and export, None if
    ``method``'s network runs there exactly, else why not (from its conversion settings,
    timing and readout: nothing is converted)."""
    from lava_retrieval.backends import registry
    from lava_retrieval.exports import nir
    from lava_retrieval.loihi import lowering

    if method.converter == "sdnn":  # lowers onto the sigma-delta processes by construction
        settings = None
        netx = []
    else:
        config = method.conversion
        settings = dict(
            pool_mode=config.pool_mode,
            reset=config.reset,
            weight_bits=config.num_weight_bits,
            initial_membrane=config.initial_membrane,
            analog_input=config.analog_input,
        )
        netx = lowering.config_problems("netx", **settings)
    out: dict[str, str | None] = {
        name: "; ".join(registry.settings_problems(name, method.timing, method.readout, settings))
        or None
        for name in registry.names()
    }
    out["netx"] = "; ".join(netx) or None
    out["nir"] = "; ".join(nir.export_problems(None, method.timing)) or None
    return out


def run_methods(args: argparse.Namespace) -> None:
    from lava_retrieval.backends import registry
    from lava_retrieval.conversion.methods import DEFAULT_METHOD, METHODS

    rows = []
    for name, method in METHODS.items():
        can = capabilities(method)
        rows.append(
            {
                "name": name,
                "default": name == DEFAULT_METHOD,
                "description": method.description,
                "time_steps": list(method.time_steps),
                "timing": method.timing,
                "readout": method.readout,
                "backends": [b for b in registry.names() if can[b] is None],
                "exports": [e for e in EXPORTS if can[e] is None],
                "cannot": {target: why for target, why in can.items() if why is not None},
            }
        )
    emit(args, {"methods": rows}, _text)


def _text(payload: dict) -> str:
    lines = []
    for row in payload["methods"]:
        t = "/".join(str(t) for t in row["time_steps"])
        lines.append(
            f"{row['name']}{' (default)' if row['default'] else ''}: T = {t}, {row['timing']}, "
            f"{row['readout']} readout. {row['description']}"
        )
        lines.append(f"  runs on: {', '.join(row['backends'])}")
        lines.append(f"  exports: {', '.join(row['exports']) or 'none'}")
        for target, why in row["cannot"].items():
            lines.append(f"  not {target}: {why}")
    return "\n".join(lines)


def register(sub) -> None:
    """Add the command to ``sub``."""
    add_command(
        sub,
        "methods",
        run_methods,
        "every method: its settings, the backends and exports it runs on, and why not the others",
    )
