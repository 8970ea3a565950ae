"""``lava-retrieval methods``: every method, the backends and exports it can run on, and for
each it cannot, the reason."""

from __future__ import annotations

import argparse

from lava_retrieval.cli.options import add_command, emit

BACKENDS = ("sim", "lava", "lava-float", "loihi", "loihi-hw")
EXPORTS = ("netx", "nir")


def capabilities(method) -> dict[str, str | None]:
    """For each backend and export, None if ``method``'s network runs there exactly, else
    why not (from its conversion settings, timing and readout: nothing is converted)."""
    from lava_retrieval.loihi import lowering
    from lava_retrieval.snn import nir
    from lava_retrieval.snn.config import GRAPH_TIMINGS

    if method.timing == "sigma_delta":
        return _sigma_delta_capabilities(method)
    config = method.conversion
    settings = dict(
        pool_mode=config.pool_mode,
        reset=config.reset,
        weight_bits=config.num_weight_bits,
        initial_membrane=config.initial_membrane,
        analog_input=config.analog_input,
    )
    out: dict[str, str | None] = {"sim": None}
    graph = (
        None
        if method.timing in GRAPH_TIMINGS
        else f"the Lava graph runs the timings {', '.join(GRAPH_TIMINGS)}, not {method.timing}"
    )
    out["lava"] = out["lava-float"] = graph
    loihi = lowering.config_problems("loihi", **settings) + lowering.timing_problems(method.timing)
    if method.readout != "membrane":
        loihi.append(f"Lava's LIF keeps no spike count: the {method.readout} readout needs one")
    out["loihi"] = "; ".join(loihi) or None
    out["loihi-hw"] = _hardware(loihi)
    out["netx"] = "; ".join(lowering.config_problems("netx", **settings)) or None
    out["nir"] = "; ".join(nir.export_problems(None, method.timing)) or None
    return out


def _hardware(loihi_problems) -> str | None:
    """Why not ``loihi-hw``: what ``loihi`` lacks, and lava-loihi where it is not installed."""
    hardware = ["what loihi needs"] if loihi_problems else []
    try:
        import lava.magma.compiler.subcompilers.nc  # noqa: F401  (part of lava-loihi)
    except ImportError:
        hardware.append("Intel's lava-loihi extension (and a Loihi system), not installed here")
    return "; ".join(hardware) or None


def _sigma_delta_capabilities(method) -> dict[str, str | None]:
    """A sigma-delta method: every Lava backend (``loihi``: Lava's own Delta/Conv/
    SigmaDelta/Dense/Sigma), the netx SDNN export; NIR cannot state its neurons."""
    from lava_retrieval.snn import nir

    out: dict[str, str | None] = {"sim": None, "lava": None, "lava-float": None, "loihi": None}
    out["loihi-hw"] = _hardware([])
    out["netx"] = None
    out["nir"] = "; ".join(nir.export_problems(None, method.timing)) or None
    return out


def run_methods(args: argparse.Namespace) -> None:
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
                "backends": [b for b in BACKENDS if can[b] is None],
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
