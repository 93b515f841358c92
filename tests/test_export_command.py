"""``python -m profiler export``: the cost table's rows against ``CostModel.call``, the LiteLLM entry's per-token
prices against the typical call they are set at, nothing written outside ``--out``, mistakes one line, exit 2."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from profiler.cli.main import main
from profiler.costmodel.fit_file import load_cost_model
from tests.user_error import user_error

EXAMPLE_FIT = Path(__file__).parents[1] / "fits" / "example" / "gpt2--cpu-intel-xeon-processor-2t.json"
STEM = EXAMPLE_FIT.stem
# LiteLLM's keys (model_prices_and_context_window.json, register_model), then ours beside them
LITELLM_KEYS = {"input_cost_per_token", "output_cost_per_token", "max_tokens", "max_input_tokens", "litellm_provider",
                "mode"}
AALP_KEYS = {"aalp_typical_call", "aalp_usd_per_device_hour", "aalp_assumptions"}


@pytest.fixture
def fit(tmp_path):
    """The committed example's gpt2 fit (schema 1.5: no extend surface), copied."""
    (tmp_path / "fits").mkdir()
    return Path(shutil.copy(EXAMPLE_FIT, tmp_path / "fits"))


def _with_extend(tmp_path, scale: float) -> Path:
    """gpt2's measured fit with a known extend surface (tests/fitted.py, times ``scale``) added: it prices a cached
    prefix. At scale 1 a pass over 256 new tokens on 256 cached costs 0.31 s, more than half the fit's 512-token
    prefill (0.47 s): a cached token costs something; at scale 0.5 less, which no price per cached token can say."""
    from tests.fitted import known_extend

    document = json.loads(EXAMPLE_FIT.read_text()) | {"schema_version": "1.6", "extend": known_extend(scale)}
    path = tmp_path / f"extend-{scale}" / EXAMPLE_FIT.name
    path.parent.mkdir()
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def extend_fit(tmp_path):
    return _with_extend(tmp_path, 1.0)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_the_table_prices_every_call_as_the_cost_model_does_inside_what_it_measured(capsys, fit, tmp_path):
    out = tmp_path / "out"
    assert main(["export", str(fit), "--out", str(out), "--usd-per-device-hour", "3"]) == 0
    rows = _rows(out / f"{STEM}.cost-table.csv")
    cost_model = load_cost_model(fit)
    prefill, decode = cost_model.curve("prefill", "latency_s"), cost_model.curve("decode", "latency_s")
    n_in, n_out = (np.array([int(row[key]) for row in rows]) for key in ("n_in", "n_out"))
    seconds = np.array([float(row["latency_s"]) for row in rows])
    assert np.allclose(seconds, cost_model.call(n_in, n_out), rtol=1e-12)
    assert np.allclose([float(row["flops"]) for row in rows], cost_model.call(n_in, n_out, metric="flops"), rtol=1e-12)
    assert np.allclose([float(row["usd"]) for row in rows], seconds * 3 / 3600, rtol=1e-12)
    for row, value in zip(rows, seconds):
        assert float(row["latency_s_low"]) <= value <= float(row["latency_s_high"])
        assert float(row["usd_low"]) <= float(row["usd"]) <= float(row["usd_high"])
    assert np.all((n_in >= prefill.n_min) & (n_in <= prefill.n_max))
    stepped = n_out > 1
    assert np.all((n_in[stepped] >= decode.n_min) & (n_in[stepped] + n_out[stepped] - 2 <= decode.n_max))
    assert {prefill.n_min, prefill.n_max} <= set(n_in) and 1 in set(n_out)
    assert (1024, 1) in set(zip(n_in, n_out)) and (8, 1017) in set(zip(n_in, n_out))  # to the decode curve's end


def test_the_litellm_prices_reproduce_the_typical_call(capsys, fit, tmp_path):
    out = tmp_path / "out"
    assert main(["export", str(fit), "--out", str(out), "--usd-per-device-hour", "2.4", "--typical-input", "300",
                 "--typical-output", "50"]) == 0
    printed = capsys.readouterr().out
    (name, entry), = json.loads((out / f"{STEM}.litellm.json").read_text()).items()
    assert name == STEM and set(entry) == LITELLM_KEYS | AALP_KEYS
    assert entry["mode"] == "completion" and entry["litellm_provider"] == "custom" and entry["max_tokens"] == 1024
    call_usd = float(load_cost_model(fit).call(300, 50)) * 2.4 / 3600
    assert 300 * entry["input_cost_per_token"] + 50 * entry["output_cost_per_token"] == pytest.approx(call_usd,
                                                                                                       rel=1e-12)
    assert entry["aalp_typical_call"] == pytest.approx({"input_tokens": 300, "output_tokens": 50,
                                                        "latency_s": call_usd * 3600 / 2.4, "usd": call_usd})
    notes = " ".join(entry["aalp_assumptions"])
    assert "typical call of 300 input and 50 output tokens" in notes and "no cache_read_input_token_cost" in notes
    assert "input_cost_per_token $" in printed and "(at 300 in, 50 out)" in printed


def test_with_an_extend_surface_the_cache_read_price_reproduces_the_typical_cached_call(capsys, extend_fit, tmp_path):
    out = tmp_path / "out"
    assert main(["export", str(extend_fit), "--out", str(out), "--usd-per-device-hour", "2"]) == 0
    entry = json.loads((out / f"{STEM}.litellm.json").read_text())[STEM]
    typical = entry["aalp_typical_call"]
    n_in, n_out, cached = typical["input_tokens"], typical["output_tokens"], typical["cached_tokens"]
    assert (n_in, n_out, cached) == (512, 128, 256)  # the defaults: half of 1,024; a quarter of 1,023 - 512 + 2
    cached_usd = float(load_cost_model(extend_fit).call(n_in, n_out, cached=cached)) * 2 / 3600
    billed = ((n_in - cached) * entry["input_cost_per_token"] + cached * entry["cache_read_input_token_cost"]
              + n_out * entry["output_cost_per_token"])
    assert billed == pytest.approx(cached_usd, rel=1e-12)
    assert 0 < entry["cache_read_input_token_cost"] < entry["input_cost_per_token"]


def test_a_cache_read_price_below_0_is_left_out_with_the_reason(capsys, tmp_path):
    out = tmp_path / "out"
    assert main(["export", str(_with_extend(tmp_path, 0.5)), "--out", str(out), "--usd-per-device-hour", "2"]) == 0
    entry = json.loads((out / f"{STEM}.litellm.json").read_text())[STEM]
    assert "cache_read_input_token_cost" not in entry and "cached_tokens" not in entry["aalp_typical_call"]
    assert any("a cached token would have a price below 0" in note for note in entry["aalp_assumptions"])


def test_without_a_rate_only_the_table_in_seconds_is_written(capsys, fit, tmp_path):
    out = tmp_path / "deep" / "out"
    assert main(["export", str(fit), "--out", str(out)]) == 0
    assert "no LiteLLM entry: its per-token prices need a rate" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [f"{STEM}.cost-table.csv"]
    assert "usd" not in _rows(out / f"{STEM}.cost-table.csv")[0]


def test_nothing_is_written_outside_out(capsys, fit, tmp_path):
    before = sorted(p for p in tmp_path.rglob("*"))
    out = tmp_path / "out"
    assert main(["export", str(fit), "--out", str(out), "--usd-per-device-hour", "1"]) == 0
    after = sorted(p for p in tmp_path.rglob("*"))
    assert sorted(set(after) - set(before)) == [out, out / f"{STEM}.cost-table.csv", out / f"{STEM}.litellm.json"]


@pytest.mark.parametrize("options, message", [
    (["--typical-input", "64"], "--typical-input and --typical-output set the LiteLLM entry's prices, which need "
                                "--usd-per-device-hour"),
    (["--usd-per-device-hour", "1", "--typical-input", "0"], "0: expected a whole number from 1 to 1,000,000,000"),
    (["--usd-per-device-hour", "1", "--typical-input", "-5"], "expected a whole number from 1"),
    (["--usd-per-device-hour", "1", "--typical-input", "1e99"], "expected a whole number from 1"),
    (["--usd-per-device-hour", "1", "--typical-input", "2048"], "--typical-input 2,048: the fit measured prefills "
                                                                "of 8 to 1,024 tokens"),
    (["--usd-per-device-hour", "1", "--typical-input", "4"], "--typical-input 4: the fit measured prefills of 8"),
    (["--usd-per-device-hour", "1", "--typical-input", "1000", "--typical-output", "100"],
     "--typical-output 100: after 1,000 input tokens the fit measured decode steps (and the model has positions) "
     "for at most 25 output tokens"),
    (["--usd-per-device-hour", "-1"], "expected US dollars a device-hour above 0"),
    (["--usd-per-device-hour", "inf"], "inf: expected a finite number"),
    (["--usd-per-device-hour", "free"], "free is not a number"),
])
def test_hostile_options_are_one_line_and_exit_2_with_nothing_written(capfd, fit, tmp_path, options, message):
    out = tmp_path / "out"
    line = user_error(capfd, ["export", str(fit), "--out", str(out), *options])
    assert message in line, line
    assert not out.exists()


def test_a_fit_out_or_name_that_cannot_be_used_is_one_line(capfd, fit, tmp_path):
    assert "missing.json: not found" in user_error(capfd, ["export", "missing.json", "--out", str(tmp_path / "o")])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert f"cannot write to {blocker}" in user_error(capfd, ["export", str(fit), "--out", str(blocker)])
    document = json.loads(fit.read_text())
    document["model"]["name"] = "../escape"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    line = user_error(capfd, ["export", str(bad), "--out", str(tmp_path / "o")])
    assert "'../escape'" in line, line
    assert not (tmp_path / "o").exists() and not (tmp_path / "escape.cost-table.csv").exists()
    assert "the following arguments are required: --out" in user_error(capfd, ["export", str(fit)])
