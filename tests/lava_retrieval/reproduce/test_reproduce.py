"""`lava-retrieval reproduce --quick` on a tiny subset: every step runs on the committed
checkpoints, writes its files and its section of REPRODUCTION.md, and is skipped when up to
date."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace

import pytest

from lava_retrieval.cli import main
from lava_retrieval.evaluation import paper
from lava_retrieval.reproduce.steps import (
    DEFAULT,
    STEPS,
    SWEEP_STEM,
    Plan,
    ReproduceError,
    reproduce,
)

pytestmark = pytest.mark.slow  # not in the fast tier (make test-fast)

TINY = replace(
    Plan.quick(),
    archs=("4-8-10", "32-64-128-256-10"),
    seeds=(0, 1),
    sweep_steps=(4, 16),
    default_steps=(4, 16),
    table1_steps=(16,),
    corpus=200,
    fig4_corpus=None,
    queries=60,
    calibration=100,
    runtime_steps=(4, 16),
    lava_images=2,
    repeats=1,
    large_batch=32,
    energy_images=10,
)
TITLES = (
    "## Table 1",
    "## Fig 3",
    "## Table 2",
    "## Fig 4",
    "## Fewer time steps",
    "## Fig 5 and Table 3",
    "## Tables 4 and 5",
    "## Fig 6",
)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    status = reproduce(out, TINY, progress=False, log=lambda _: None)
    return out, status


def test_every_step_runs_and_reports(reproduced):
    out, status = reproduced
    assert [status[s] for s in STEPS] == ["done"] * len(STEPS)
    report = (out / "REPRODUCTION.md").read_text()
    for title in TITLES:
        assert title in report
    assert "Not run yet" not in report
    for figure in (
        "fig3-core-map.png",
        "fig4-time-steps.png",
        "fig5-runtime.png",
        "fig6-retrieval.png",
    ):
        assert (out / figure).stat().st_size > 10_000
        assert f"]({figure})" in report
    for step in STEPS:
        name = "table2-reproduce" if step == "table2" else step
        record = json.loads((out / f"{name}.json").read_text())
        assert record["key"] and record["machine"]["cores"] >= 1
        assert record["command"] == f"lava-retrieval reproduce --only {step}"


def test_each_table_has_its_rows_its_statistics_and_the_papers_numbers(reproduced):
    """What each step computes on the tiny plan: its rows, the spread of Fig 4 computed from
    the seeds' own rows, the paper's numbers beside ours (the committed full tables are held to
    the code by ``test_committed_results.py``)."""
    out, _ = reproduced
    table1 = json.loads((out / "table1.json").read_text())["result"]
    rows = {r["arch"]: r for r in table1["rows"]}
    assert set(rows) == set(TINY.archs)
    for row in rows.values():
        assert row["epochs"] >= 1 and 70 < row["test"] <= 100
        assert 10 <= row["snn"]["16"] <= row["test"] + 5  # not above its ANN (one class: 10)
        assert row["max_fan_in"] <= 4096 and row["cores"] > 0
    # The paper's "not deployable" network meets the fan-in limit exactly in our layout.
    assert rows["32-64-128-256-10"]["max_fan_in"] == 4096
    report = (out / "REPRODUCTION.md").read_text()
    assert "Deployability of 32-64-128-256-10" in report
    # Paper numbers come from lava_retrieval.evaluation.paper, labelled as the paper's.
    assert " / ".join(f"{v:.2f}" for v in paper.TABLE1["4-8-10"][:3]) in report
    fig4 = json.loads((out / "fig4.json").read_text())["result"]
    assert fig4["seeds"] == [0, 1] and set(fig4["summary"]) == {"ANN", "SNN(4)", "SNN(16)"}
    seeds = [json.loads((out / "parts" / f"fig4-seed{s}.json").read_text()) for s in (0, 1)]
    for model in ("ANN", "SNN(16)"):
        values = [next(r for r in s["rows"] if r["model"] == model)["top1"] for s in seeds]
        summary = fig4["summary"][model]["top1"]
        assert summary["mean"] == pytest.approx(statistics.fmean(values), abs=1e-4)
        assert summary["std"] == pytest.approx(statistics.stdev(values), abs=1e-4)
    energy = json.loads((out / "energy.json").read_text())["result"]
    assert {c["time_steps"] for c in energy["checks"]} == {16, 128}
    # The default method's sweep is reproduce's own, and the energy section quotes it.
    sweep = json.loads((out / f"{SWEEP_STEM}.json").read_text())
    assert SWEEP_STEM == "sweep-qcfs8-analog-exact_count-integrated"
    assert [r["model"] for r in sweep["rows"]] == ["ANN", "SNN(4)", "SNN(16)"]
    assert sweep["protocol"]["method"] == DEFAULT
    assert (sweep["protocol"]["timing"], sweep["protocol"]["readout"]) == (
        "exact_count",
        "integrated",
    )
    quoted = {r["time_steps"]: r["accuracy"] for r in energy["rows"] if r["method"] == DEFAULT}
    # Every method's energy row: one per method and T, graded rows one step a layer.
    graded = [r for r in energy["rows"] if r["timing"] == "graded"]
    assert graded and all(r["counts"]["steps"] == 6 for r in graded)
    assert {r["method"] for r in energy["rows"]} >= {"paper", "qcfs", DEFAULT, "qcfs4-analog"}
    for row in sweep["rows"][1:]:
        steps = int(row["model"][4:-1])
        assert quoted[steps]["classification"] == row["classification"]
    assert quoted[8] is None  # not in this plan's sweep: not borrowed from elsewhere
    runtime = json.loads((out / "runtime.json").read_text())["result"]
    assert {r["model"] for r in runtime["rows"]} == {"ann", "sim", "lava"}
    assert all(r["ms"] > 0 for r in runtime["rows"])


def test_up_to_date_steps_are_skipped_and_changes_redone(reproduced, monkeypatch):
    """Steps whose plan, checkpoints and code are unchanged are skipped; a changed plan or
    changed code (another hash of the package's sources) runs them again."""
    from lava_retrieval.reproduce import context

    out, _ = reproduced
    start = time.perf_counter()
    again = reproduce(out, TINY, progress=False, log=lambda _: None)
    assert [again[s] for s in STEPS] == ["up to date"] * len(STEPS)
    assert time.perf_counter() - start < 5
    changed = reproduce(
        out, replace(TINY, queries=50), only=("table1",), progress=False, log=lambda _: None
    )
    assert changed["table1"] == "done"
    assert json.loads((out / "table1.json").read_text())["result"]["queries"] == 50
    assert json.loads((out / "fig3.json").read_text())["code"] == context.source_hash()
    monkeypatch.setattr(context, "source_hash", lambda: "another code")
    again = reproduce(out, TINY, only=("fig3",), progress=False, log=lambda _: None)
    assert again["fig3"] == "done"


def test_missing_checkpoints_and_unknown_steps_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ReproduceError, match="missing: run from the repository root"):
        reproduce(
            tmp_path,
            TINY,
            only=("table1",),
            checkpoints=tmp_path / "none",
            progress=False,
            log=lambda _: None,
        )
    assert main(["reproduce", "--only", "table9", "--out-dir", str(tmp_path)]) == 2
    assert "unknown step(s) table9" in capsys.readouterr().err
    assert main(["reproduce", "--device", "tpu", "--only", "fig3", "--out-dir", str(tmp_path)]) == 2
    assert "not available" in capsys.readouterr().err


def test_cli_quick_runs_a_step_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "quick"
    assert main(["reproduce", "--quick", "--only", "fig3", "--out-dir", str(out), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["fig3"] == "done" and status["report"] == str(out / "REPRODUCTION.md")
    report = (out / "REPRODUCTION.md").read_text()
    assert "## Fig 3" in report and "quick: corpus 2,000" in report
    assert "Not run yet: `lava-retrieval reproduce --only table1`" in report
