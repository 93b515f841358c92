"""Calls in US dollars: a price sheet's call by hand, the exercises' closed forms against their recorded (and
replayed) calls priced by hand, a device-hour's dollars against the fit's seconds, and ``breakeven --unit usd``."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from profiler.cli.main import main
from profiler.lba.breakeven import evaluate
from profiler.lba.calls import CallRecorder
from profiler.lba.dollars import DeviceHourPricing, SheetPricing
from profiler.lba.exercises import VARIANTS, Debugging, KTask
from profiler.lba.prefix_cache import Reuse
from profiler.lba.price_sheet import read_price_sheet
from profiler.lba.reuse import replay
from profiler.lba.schedule import SEQUENTIAL
from tests.user_error import user_error

EXAMPLE_FIT = Path(__file__).parents[1] / "fits" / "example" / "gpt2--cpu-intel-xeon-processor-2t.json"
# USD per million tokens: input, cached input, output
SMALL, LARGE = (2.0, 0.5, 10.0), (6.0, 0.6, 30.0)


def _sheet_document(scale: float = 1.0) -> dict:
    def prices(p):
        return dict(zip(("input_usd_per_mtok", "cached_input_usd_per_mtok", "output_usd_per_mtok"),
                        (scale * x for x in p)))

    return {"format_version": 1, "source": "https://example.com/prices", "read_on": "2026-01-15", "currency": "USD",
            "models": {"small": prices(SMALL), "large": prices(LARGE)}}


@pytest.fixture
def sheet_path(tmp_path):
    path = tmp_path / "sheet.json"
    path.write_text(json.dumps(_sheet_document()))
    return path


@pytest.fixture
def sheet(sheet_path):
    return read_price_sheet(sheet_path)


def _by_hand(prices, n_in, n_out, cached=0):
    p_in, p_cached, p_out = prices
    return ((n_in - cached) * p_in + cached * p_cached + n_out * p_out) / 1e6


def test_a_call_in_dollars_by_hand(sheet):
    small = sheet.models["small"]
    assert small.call_usd(1000, 100, cached=400) == pytest.approx((600 * 2 + 400 * 0.5 + 100 * 10) / 1e6, rel=1e-12)
    assert small.call_usd(1000, 100) == pytest.approx(0.003, rel=1e-12)
    assert np.allclose(small.call_usd(np.array([10, 20]), 5), [_by_hand(SMALL, 10, 5), _by_hand(SMALL, 20, 5)])


def test_a_role_of_its_own_model_pays_its_prices_the_others_the_base_model_times_their_size(sheet):
    pricing = SheetPricing(sheet, sheet.models["small"], {"generalist": sheet.models["large"]})
    assert pricing.unit == "USD" and "small's prices, generalist at large's" in pricing.name
    assert "example.com" in pricing.name and "2026-01-15" in pricing.name
    assert pricing.price("generalist", 512, 8, size=8) == pytest.approx(_by_hand(LARGE, 512, 8), rel=1e-12)
    assert pricing.price("specialist", 512, 8, size=3) == pytest.approx(3 * _by_hand(SMALL, 512, 8), rel=1e-12)
    assert pricing.price("qa", 100, 4, cached=60) == pytest.approx(_by_hand(SMALL, 100, 4, 60), rel=1e-12)
    notes = " ".join(pricing.assumptions(resized=True))
    assert "https://example.com/prices" in notes and "s times small's prices" in notes


def _params(exercise, **overrides):
    return {name: float(value) for name, value in (exercise.defaults() | overrides).items()}


@pytest.mark.parametrize("exercise, overrides", [(KTask, {"k": 4, "load": 6, "system_prompt": 50}),
                                                 (Debugging, {"k": 6, "b": 2, "system_prompt": 30})])
def test_the_closed_forms_in_dollars_are_the_recorded_calls_priced_by_hand(sheet, exercise, overrides):
    """An independent reference: every call the programs make, at the sheet's prices by hand, times its role's
    size (the paper's linearity: only the base model's roles here)."""
    pricing = SheetPricing(sheet, sheet.models["small"])
    params = _params(exercise, **overrides)
    sizes = exercise.role_sizes(params)
    totals = evaluate(exercise, params, pricing)["totals"]
    for variant in VARIANTS:
        recorder = CallRecorder()
        getattr(exercise, variant)(params, recorder, np.random.default_rng(0))
        by_hand = sum(count * float(sizes[call.role]) * _by_hand(SMALL, call.n_in, call.n_out)
                      for call, count in recorder.counts.items())
        assert float(totals[variant]) == pytest.approx(by_hand, rel=1e-9)


def test_prefix_reuse_prices_the_cached_tokens_at_the_cached_input_price(sheet):
    pricing = SheetPricing(sheet, sheet.models["small"])
    params = _params(Debugging, k=6, b=2, system_prompt=100)
    reuse = replace(SEQUENTIAL, reuse=Reuse())
    reused = evaluate(Debugging, params, pricing, reuse)["totals"]
    plain = evaluate(Debugging, params, pricing)["totals"]
    for variant in VARIANTS:
        counts = replay(Debugging, variant, params, Reuse()).counts
        assert any(cached > 0 for _, cached in counts)
        by_hand = sum(count * _by_hand(SMALL, call.n_in, call.n_out, cached)
                      for (call, cached), count in counts.items())
        assert float(reused[variant]) == pytest.approx(by_hand, rel=1e-9)
        assert float(reused[variant]) < float(plain[variant])


def test_a_device_hour_prices_the_fitted_seconds(fitted_pricing):
    pricing = DeviceHourPricing(fitted_pricing, 7.2)
    n_in, n_out = np.array([16, 256, 1000]), np.array([1, 8, 64])
    seconds = fitted_pricing.price("qa", n_in, n_out, size=2.0)
    assert np.allclose(pricing.price("qa", n_in, n_out, size=2.0), seconds * 7.2 / 3600, rtol=1e-12)
    assert pricing.unit == "USD" and pricing.name.endswith("at $7.2 a device-hour")
    assert "a call costs its fitted seconds times $7.2 / 3,600" in pricing.assumptions(False)[-1]


# ---- breakeven --unit usd -----------------------------------------------------------------------------------------

def _json(capsys, *argv):
    assert main(["breakeven", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_breakeven_from_a_sheet_prints_usd_and_its_break_even_stays_when_every_price_scales(capsys, tmp_path,
                                                                                          sheet_path):
    argv = ["--exercise", "ktask", "--values", "1:6", "--unit", "usd", "--price-model", "small"]
    assert main(["breakeven", *argv, "--price-sheet", str(sheet_path)]) == 0
    out = capsys.readouterr().out
    assert "priced by small's prices (example.com, read 2026-01-15)" in out and " USD " in out
    assert "break-even: k = " in out
    document = _json(capsys, *argv, "--price-sheet", str(sheet_path))
    assert document["unit"] == "USD" and document["breakeven"] is not None
    scaled = tmp_path / "scaled.json"
    scaled.write_text(json.dumps(_sheet_document(scale=7.0)))
    tripled = _json(capsys, *argv, "--price-sheet", str(scaled))
    assert tripled["breakeven"] == pytest.approx(document["breakeven"], rel=1e-9)
    for row, scaled_row in zip(document["rows"], tripled["rows"], strict=True):
        assert scaled_row["ratio"] == pytest.approx(row["ratio"], rel=1e-12)
        assert scaled_row["optimized"] == pytest.approx(7 * row["optimized"], rel=1e-12)


def test_breakeven_per_device_hour_is_the_seconds_break_even_in_dollars(capsys, tmp_path):
    fit = shutil.copy(EXAMPLE_FIT, tmp_path)
    argv = ["--fit", str(fit), "--exercise", "ktask", "--values", "1:6"]
    seconds = _json(capsys, *argv)
    dollars = _json(capsys, *argv, "--unit", "usd", "--usd-per-device-hour", "2.5")
    assert seconds["unit"] == "s" and dollars["unit"] == "USD" and seconds["breakeven"] is not None
    assert dollars["breakeven"] == pytest.approx(seconds["breakeven"], rel=1e-9)
    for row, dollar_row in zip(seconds["rows"], dollars["rows"], strict=True):
        for variant in VARIANTS:
            assert dollar_row[variant] == pytest.approx(row[variant] * 2.5 / 3600, rel=1e-12)
    assert dollars["pricing"].endswith("at $2.5 a device-hour")


@pytest.mark.parametrize("argv, message", [
    (["--unit", "usd"], "--unit usd needs --price-sheet FILE (a provider's prices per million tokens) or"),
    (["--price-sheet", "SHEET"], "--price-sheet prices in dollars: add --unit usd"),
    (["--usd-per-device-hour", "2"], "--usd-per-device-hour prices in dollars: add --unit usd"),
    (["--price-model", "small"], "--price-model prices in dollars: add --unit usd"),
    (["--unit", "usd", "--price-sheet", "SHEET", "--usd-per-device-hour", "2"], "alternatives: give one"),
    (["--unit", "usd", "--usd-per-device-hour", "2"], "--usd-per-device-hour prices a fit's seconds: add --fit"),
    (["--unit", "usd", "--usd-per-device-hour", "2", "--fit", "FIT", "--price-model", "small"],
     "--price-model and --role-price choose a price sheet's models: add --price-sheet"),
    (["--unit", "usd", "--price-sheet", "SHEET", "--fit", "FIT"], "drop --fit and --primitive"),
    (["--unit", "usd", "--price-sheet", "SHEET", "--primitive", "paper"], "drop --fit and --primitive"),
    (["--unit", "usd", "--price-sheet", "SHEET"], "the price sheet prices 2 models: choose the one for every role"),
    (["--unit", "usd", "--price-sheet", "SHEET", "--price-model", "medium"],
     "--price-model: no model 'medium' in the price sheet (it has small, large)"),
    (["--unit", "usd", "--price-sheet", "SHEET", "--price-model", "small", "--role-price", "boss=large"],
     "--role-price 'boss=large': expected ROLE=NAME with ROLE one of"),
    (["--unit", "usd", "--price-sheet", "SHEET", "--price-model", "small", "--role-price", "qa=large",
      "--role-price", "qa=small"], "--role-price: qa is given twice"),
    (["--unit", "usd", "--price-sheet", "SHEET", "--price-model", "small", "--metric", "flops"],
     "use --metric latency_s"),
    (["--unit", "usd", "--price-sheet", "SHEET", "--price-model", "small", "--schedule", "parallel"],
     "drop --schedule parallel"),
    (["--unit", "eur"], "argument --unit: invalid choice: 'eur'"),
    (["--price-model", ""], "--price-model prices in dollars: add --unit usd"),
    (["--unit", "usd", "--usd-per-device-hour", "0"], "0: expected US dollars a device-hour above 0"),
    (["--unit", "usd", "--usd-per-device-hour", "nan"], "nan: expected a finite number"),
    (["--unit", "usd", "--usd-per-device-hour", "1e7"], "expected US dollars a device-hour above 0 and at most"),
    (["--unit", "usd", "--usd-per-device-hour", "two"], "two is not a number"),
])
def test_dollar_mistakes_are_one_line_and_exit_2(capfd, tmp_path, sheet_path, argv, message):
    fit = shutil.copy(EXAMPLE_FIT, tmp_path)
    argv = [{"SHEET": str(sheet_path), "FIT": str(fit)}.get(arg, arg) for arg in argv]
    line = user_error(capfd, ["breakeven", "--exercise", "ktask", *argv])
    assert message in line, line
