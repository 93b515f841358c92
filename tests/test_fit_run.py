"""What ``fit_run`` derives beside the curves, and the bounds on its work: the linearity horizon read off a latency
curve (curves of ``tests/test_cost_model.py``), and a phase's rows thinned evenly and deterministically, which a
thinned fit says (on a copy of the committed example's run, ``tests/test_file_inputs.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profiler.cli.main import main
from profiler.costmodel.fit import fit_curve
from profiler.costmodel.fit_file import write_fit
from profiler.costmodel.fit_run import MAX_FIT_SAMPLES, fit_run, linearity_horizon, thinned
from tests.test_cost_model import DECODE, PREFILL, N
from tests.test_file_inputs import _copy_run


def test_linearity_horizon_solves_the_quadratic_share():
    n10 = linearity_horizon(fit_curve(N, PREFILL(N), "s"), 0.1)
    assert 3e-7 * n10**2 == pytest.approx(0.1 * PREFILL(n10), rel=0.05)
    decode = fit_curve(N, DECODE(N), "s")
    assert linearity_horizon(decode, 0.1) is None or linearity_horizon(decode, 0.1) > 1e5


# ---- bounded work ----------------------------------------------------------------------------------------

def test_a_large_file_is_thinned_evenly_and_deterministically():
    rows = pd.DataFrame({"n_ctx": [8] * 5000 + [16] * 30 + [32] * 3, "n_new": 1, "latency_s": 1.0})
    rows["order"] = range(len(rows))
    kept = thinned(rows)
    per_point = MAX_FIT_SAMPLES // 3
    assert list(kept.groupby("n_ctx").size()) == [per_point, 30, 3]  # small points keep every repeat
    first = kept[kept.n_ctx == 8]["order"].to_numpy()
    assert first[0] == 0 and abs(first[-1] - 4999) < 5000 / per_point  # spread over the whole point
    steps = {int(step) for step in np.diff(first)}
    assert steps <= {3, 4}  # 5000 / 1365 apart, evenly
    assert kept.equals(thinned(rows))


def test_many_lengths_are_thinned_to_the_bound_keeping_both_ends(monkeypatch):
    monkeypatch.setattr("profiler.costmodel.fit_run.MAX_FIT_LENGTHS", 10)
    rows = pd.DataFrame({"n_ctx": range(1, 101), "n_new": 1, "latency_s": 1.0})
    lengths = list(thinned(rows)["n_ctx"])
    assert len(lengths) == 10 and lengths[0] == 1 and lengths[-1] == 100


def test_a_thinned_fit_says_so(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr("profiler.costmodel.fit_run.MAX_FIT_SAMPLES", 30)  # the example's phases have 45-60 rows
    folder = _copy_run(tmp_path)
    fit = fit_run(folder)
    thinned_rows = fit.source["thinned"]
    assert set(thinned_rows) == {"prefill", "decode", "forward"}
    for phase, counts in thinned_rows.items():
        assert counts["fitted"] <= 30 < counts["rows"]
        assert fit.curves[phase]["latency_s"].samples == counts["fitted"]
    path = write_fit(fit, tmp_path / "fits").path
    capfd.readouterr()
    assert main(["show", str(path)]) == 0
    assert "fitted on an even spread of fewer rows than measured" in capfd.readouterr().out


@pytest.mark.slow
def test_an_attention_free_model_is_fitted_by_its_own_flop_terms(tmp_path, monkeypatch):
    """A Mamba's run: every phase prefers a constant and a linear term (no attention, no quadratic), its decode
    FLOPs are the same at every context (R^2 1: nothing to explain), and the fit says it has no heads and takes
    2^20 positions."""
    from profiler.costmodel.fit_file import load_cost_model
    from profiler.files import read_json
    from tests.families import save_family
    from tests.user_error import skip_ceilings

    skip_ceilings(monkeypatch)
    folder = save_family(tmp_path / "mamba", "mamba")
    assert main(["run", "--model", str(folder), "--lengths", "8,16,32", "--budget", "8",
                 "--out", str(tmp_path / "out"), "--fits", str(tmp_path / "fits")]) == 0
    (path,) = (tmp_path / "fits").glob("mamba--*.json")
    load_cost_model(path)  # valid against the schema, and prices
    document = read_json(path)
    model, curves = document["model"], document["curves"]
    assert (model["heads"], model["kv_heads"], model["max_positions"]) == (0, 0, 2**20)
    for phase in ("prefill", "decode", "forward"):
        assert curves[phase]["flops"]["preferred"] == "affine"
    assert curves["decode"]["flops"]["r2"] == 1.0
