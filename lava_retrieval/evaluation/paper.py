"""Every number of Liu et al., "Neuromorphic computing for content-based image retrieval",
PLoS ONE 17(4): e0264364 (2022), that this project compares against, in one place.

Nothing here is ours: each value is copied from the journal version's tables, and anything
printed from this module is labelled as the paper's. The project's own numbers come from result
files written by ``lava-retrieval reproduce`` and ``evaluate``.

Figures 4 and 5 are plots without numbers in the text; what the text says about them is kept as
sentences (:data:`FIGURE_NOTES`).
"""

from __future__ import annotations

CITATION = (
    'T.-Y. Liu, A. Mahjoubfar, D. Prusinski, L. Stevens, "Neuromorphic computing for '
    'content-based image retrieval", PLoS ONE 17(4): e0264364 (2022)'
)

#: Table 1: architecture -> ANN train, validation, test accuracy and SNN test accuracy (percent;
#: ``None``: "N/A", the network did not fit one Loihi chip).
TABLE1: dict[str, tuple[float, float, float, float | None]] = {
    "4-8-10": (85.03, 85.37, 83.96, 83.73),
    "8-16-10": (89.11, 88.43, 87.41, 86.98),
    "16-32-10": (89.41, 88.72, 87.85, 87.41),
    "32-64-10": (93.99, 90.68, 90.07, 90.01),
    "4-8-16-10": (87.47, 87.20, 86.16, 86.02),
    "8-16-32-10": (90.43, 89.03, 88.40, 76.54),
    "16-32-64-10": (90.36, 89.25, 87.91, 87.85),
    "32-64-128-10": (93.37, 90.08, 89.43, 88.18),
    "4-8-16-32-10": (89.14, 88.57, 87.87, 87.49),
    "8-16-32-64-10": (92.11, 90.20, 89.51, 84.19),
    "16-32-64-128-10": (94.27, 90.60, 89.76, 85.79),
    "32-64-128-256-10": (93.38, 90.78, 90.21, None),
}
#: The architectures the paper found not deployable on one Loihi chip ("the maximum fan-in was
#: exceeded").
TABLE1_NOT_DEPLOYABLE = ("32-64-128-256-10",)

#: Table 2: model -> classification, top-1, top-3 retrieval accuracy (percent), 32-64-10.
TABLE2: dict[str, tuple[float, float, float]] = {
    "ANN": (90.07, 87.49, 94.55),
    "SNN(16)": (85.05, 85.55, 93.56),
    "SNN(128)": (90.01, 86.58, 93.93),
}

#: Table 3 (latency), Table 4 (power) and Table 5 (energy), one record per row:
#: model, batch size, hardware, runtime per example (ms), static / dynamic / total power (W),
#: energy per example (mJ).
HARDWARE_ROWS: tuple[dict, ...] = tuple(
    dict(
        zip(
            ("model", "batch_size", "hardware", "ms", "static_w", "dynamic_w", "total_w", "mj"),
            row,
            strict=True,
        )
    )
    for row in (
        ("ANN", 1, "Intel Xeon CPU (Gold 6148)", 0.216, 196, 19.1, 215.1, 46.787),
        ("ANN", 262144, "Intel Xeon CPU (Gold 6148)", 0.0073, 196, 44.189, 240.189, 1.753),
        ("ANN", 1, "Intel CPU (i7-8750H)", 0.2634, 22, 1.805, 23.805, 9.522),
        ("ANN", 128, "Intel CPU (i7-8750H)", 0.013, 22, 5.633, 27.633, 0.316),
        ("ANN", 1, "ARM CPU (Cortex-A72)", 0.778, 0.142, 9.082, 9.224, 7.379),
        ("ANN", 2048, "ARM CPU (Cortex-A72)", 0.356, 0.142, 2.698, 2.84, 1.02),
        ("ANN", 1, "NVIDIA GPU (V100)", 1.296, 24, 16.441, 40.441, 52.399),
        ("ANN", 4096, "NVIDIA GPU (V100)", 0.0075, 24, 20.511, 44.511, 0.337),
        ("ANN", 1, "NVIDIA GPU (T4)", 1.204, 17, 14.049, 31.049, 37.399),
        ("ANN", 4096, "NVIDIA GPU (T4)", 0.010, 17, 18.228, 35.228, 0.366),
        ("SNN(16)", 1, "Loihi chip (neuromorphic cores)", 2.984, 0.946, 0.044, 0.991, 2.996),
        ("SNN(128)", 1, "Loihi chip (neuromorphic cores)", 11.976, 0.952, 0.064, 1.016, 12.17),
    )
)


def loihi_row(time_steps: int) -> dict:
    """The paper's Loihi measurement at ``time_steps`` (16 or 128).

    >>> loihi_row(16)["mj"]
    2.996
    """
    for row in HARDWARE_ROWS:
        if row["model"] == f"SNN({time_steps})":
            return row
    raise KeyError(f"the paper measured Loihi at T = 16 and 128 only, not {time_steps}")


#: Fig 3: the 32-64-10 network's layers on one chip (the figure shows a few occupied cores of
#: the 128; the text gives no count).
FIGURE_NOTES = {
    "fig3": (
        "There are 128 neuromorphic cores on a Loihi chip in 8 rows with 16 cores a row. [...] "
        "Our best performing SNN (Fig 2) is relatively compact, so the number of cores occupied "
        "is small compared with the number of cores available on a Loihi chip."
    ),
    "fig4": (
        "performance metrics skyrocket between 4 time steps and 16 time steps and then plateau "
        "[...] The error bars indicate the negligible variations among five independently "
        "trained networks"
    ),
    "fig5": (
        "As we gradually increase the number of time steps, the runtime scales up almost "
        "linearly. However, the runtime is independent of the number of time steps for small "
        "numbers, e.g., 4 or 8 time steps because the overhead takes up the majority of the "
        "runtime."
    ),
    "fig6": (
        "The first column shows query images, each from a class in the dataset. The next three "
        "columns present three [images of the same class]"
    ),
}
