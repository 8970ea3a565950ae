"""``lava-retrieval methods``: every method with where it runs and why not elsewhere."""

from __future__ import annotations

import json

from lava_retrieval.cli import main
from lava_retrieval.conversion.methods import DEFAULT_METHOD, METHODS


def test_every_method_with_its_backends_and_reasons(capsys):
    assert main(["methods", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["methods"]}
    assert list(rows) == list(METHODS)
    assert [name for name, row in rows.items() if row["default"]] == [DEFAULT_METHOD]
    for row in rows.values():
        assert row["backends"][0] == "sim"
        targets = {*row["backends"], *row["exports"], *row["cannot"]}
        assert targets == {"sim", "lava", "lava-float", "loihi", "loihi-hw", "netx", "nir"}
        assert all(row["cannot"].values())  # every refusal says why
    # The pipelined method exports to NIR; exact_count and graded ones cannot, and say so.
    assert "nir" in rows["qcfs"]["exports"]
    assert "exact_count timing" in rows["qcfs8-analog"]["cannot"]["nir"]
    assert "graded" in rows["qcfs-graded"]["cannot"]["nir"]
    # The paper's network: subtractive reset and 9-bit weights keep it off Lava's LIF.
    paper = rows["paper"]
    assert {"lava", "lava-float"} <= set(paper["backends"])
    assert "--reset zero" in paper["cannot"]["loihi"] and "pooling" in paper["cannot"]["netx"]
    assert "lava-loihi" in paper["cannot"]["loihi-hw"]
    # The Loihi path streams under delay and pipelined; other timings are named.
    assert "timing" not in rows["qcfs"]["cannot"]["loihi"]
    assert "delay and pipelined, not exact_count" in rows["qcfs8-analog"]["cannot"]["loihi"]


def test_the_text_lists_them(capsys):
    assert main(["methods"]) == 0
    text = capsys.readouterr().out
    assert f"{DEFAULT_METHOD} (default): T = 8, exact_count" in text
    assert "runs on: sim, lava, lava-float" in text and "not netx:" in text
