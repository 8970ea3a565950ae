"""Converting to files: the spiking network, its Loihi resource check, the netx export and the
core map, as ``lava-retrieval convert`` writes them (the algorithm is
:mod:`lava_retrieval.conversion.algorithm`)."""

from __future__ import annotations

import os

from lava_retrieval.conversion.algorithm import ConversionConfig, convert_checkpoint
from lava_retrieval.snn.network import SpikingNetwork


def convert_to_file(
    checkpoint,
    dataset,
    config: ConversionConfig,
    out: str | os.PathLike,
    *,
    export_netx: str | os.PathLike | None = None,
    export_nir: str | os.PathLike | None = None,
    nir_timing: str = "no_delay",
    loihi_report: str | os.PathLike | None = None,
    allow_undeployable: bool = False,
    sdnn: bool = False,
) -> tuple[SpikingNetwork, dict]:
    """Convert a checkpoint, check it against one Loihi chip, and write the network (and, if
    asked, its netx export and core-map figure). What ``lava-retrieval convert`` does.

    Every reason the netx export would be inexact, or the NIR export (``export_nir``, run with
    ``nir_timing``) impossible, is reported in one message before anything is converted; a
    network that does not fit one chip is refused unless ``allow_undeployable``. With ``sdnn``
    the checkpoint is converted for sigma-delta neurons (:mod:`lava_retrieval.conversion.sdnn`:
    ``config`` and ``dataset`` are not used) and the netx export is an SDNN file
    (:mod:`lava_retrieval.exports.netx_sdnn`).

    Returns
    -------
    (network, report)
        The network and a JSON-able description: files written, configuration, per-layer
        scalars with fan-in and cores, the Loihi report.
    """
    from lava_retrieval.common.atomic import check_outputs
    from lava_retrieval.exports.netx import NetxExportError
    from lava_retrieval.exports.netx import export_netx as write_netx
    from lava_retrieval.loihi import lowering
    from lava_retrieval.loihi import resources as loihi

    check_outputs(  # before converting: each a file that can be written, no two the same
        [
            ("out", out, False),
            ("export_netx", export_netx, False),
            ("export_nir", export_nir, False),
            ("loihi_report", loihi_report, False),
        ]
    )
    if export_nir:
        from lava_retrieval.exports import nir as nir_export

        nir_export.nir_module()  # installed?
        found = nir_export.export_problems(None, "sigma_delta" if sdnn else nir_timing)
        if found:
            raise nir_export.NIRExportError("cannot export to NIR: " + "; ".join(found))
    if sdnn:
        return _convert_sdnn(checkpoint, out, export_netx, loihi_report, allow_undeployable)
    config = config.resolved(checkpoint.config.activation == "qcfs")
    if export_netx:
        found = lowering.config_problems(
            "netx",
            pool_mode=config.pool_mode,
            reset=config.reset,
            weight_bits=config.num_weight_bits,
            initial_membrane=config.initial_membrane or 0.0,  # (None: by the ANN, zero or half)
            analog_input=config.analog_input,
        )
        if found:
            raise NetxExportError("cannot export to netx: " + "; ".join(found))
    network = convert_checkpoint(checkpoint, dataset, config)
    payload = _saved(network, checkpoint, out, allow_undeployable)
    report = payload.pop("_report")
    if export_netx:
        payload["netx"] = str(write_netx(network, export_netx))
    if export_nir:
        payload["nir"] = str(nir_export.export_nir(network, export_nir, nir_timing))
    if loihi_report:
        title = f"{network.arch}, pooling {network.pool_mode}, {config.num_weight_bits}-bit weights"
        payload["loihi_report"] = str(loihi.plot_core_map(report, loihi_report, title))
    return network, payload


def _convert_sdnn(checkpoint, out, export_netx, loihi_report, allow_undeployable):
    """:func:`convert_to_file` with ``sdnn``."""
    from lava_retrieval.conversion.sdnn import convert_sdnn_checkpoint
    from lava_retrieval.exports.netx_sdnn import export_sdnn
    from lava_retrieval.loihi import resources as loihi
    from lava_retrieval.loihi import sdnn_lowering

    network = convert_sdnn_checkpoint(checkpoint)
    if export_netx:  # every reason before anything is written
        sdnn_lowering.check(network)
    payload = _saved(network, checkpoint, out, allow_undeployable)
    report = payload.pop("_report")
    if export_netx:
        payload["netx"] = str(export_sdnn(network, export_netx))
    if loihi_report:
        title = f"{network.arch}, sigma-delta, 8-bit weights"
        payload["loihi_report"] = str(loihi.plot_core_map(report, loihi_report, title))
    return network, payload


def _saved(network: SpikingNetwork, checkpoint, out, allow_undeployable: bool) -> dict:
    """Check ``network`` against one chip and write it to ``out``: the report's payload, with
    the chip report itself under ``_report``."""
    from lava_retrieval.loihi import resources as loihi

    report = loihi.check(network)
    if not report.deployable and not allow_undeployable:
        raise loihi.UndeployableError(
            f"the network does not fit one Loihi chip: {report.reason} "
            "(--allow-undeployable writes it anyway)"
        )
    network.save(out)
    return {
        "network": str(out),
        "checkpoint": str(checkpoint.path),
        "fingerprint": network.fingerprint(),
        "config": network.manifest.get("converter") or network.manifest.get("sdnn"),
        "embedding_layer": network.layers[network.embedding_layer].name,
        "embedding_shape": list(network.embedding_shape),
        "layers": [
            {**layer.scalars(), "fan_in": res.fan_in, "cores": res.cores}
            for layer, res in zip(network.layers, report.layers, strict=True)
        ],
        "loihi": report.to_dict(),
        "_report": report,
    }
