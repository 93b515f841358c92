"""Energy counters (``profiler.measure.energy``), the ``energy_j`` column, its fit and its price.

The RAPL reader is tested on a powercap file layout made in a temporary folder: that checks the reader's arithmetic
(several packages, wrap-around, the resolution rule) and its reasons on given files, not a measurement. The fit is
tested on given energy values, not measured ones. A real run on this machine records what its counter gave, or why
there is none; tests that read a real counter skip where the machine has none.
"""

import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from profiler.cli.main import main
from profiler.costmodel.cost_model import MissingCurve
from profiler.costmodel.fit_file import load_cost_model, validation_error, write_fit
from profiler.costmodel.fit_run import fit_run
from profiler.errors import UserError
from profiler.measure.catalog import ModelSource
from profiler.measure.energy import (
    MAX_PACKAGE_POWER_W,
    MIN_UPDATES_PER_PASS,
    RAPL_UPDATE_S,
    EnergyRecord,
    open_energy_counter,
    open_rapl,
)
from profiler.measure.loading import load_model
from profiler.measure.run_document import RunDone
from profiler.measure.samples import COLUMNS, SampleWriter, read_samples
from profiler.measure.sweep import Sweep
from profiler.measure.timing import RepeatPolicy
from tests.clock import FakeClock, charge
from tests.conftest import save_tiny
from tests.user_error import skip_ceilings, user_error

RANGE_UJ = 262_143_328_850  # a package's max_energy_range_uj as Intel CPUs give it
EXAMPLE_RUN = Path(__file__).parents[1] / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2"


def _zone(powercap: Path, name: str, folder: str, energy_uj: int = 0, range_uj: int = RANGE_UJ) -> Path:
    zone = powercap / folder
    zone.mkdir(parents=True)
    (zone / "name").write_text(f"{name}\n")
    (zone / "max_energy_range_uj").write_text(f"{range_uj}\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    return zone / "energy_uj"


@pytest.fixture
def powercap(tmp_path) -> Path:
    """Two packages, a package's sub-zone (core), the platform zone (psys, which holds the packages) and an MMIO
    zone: only the two packages are counted."""
    root = tmp_path / "powercap"
    _zone(root, "package-0", "intel-rapl:0", 5_000_000)
    _zone(root, "package-1", "intel-rapl:1", 7_000_000)
    _zone(root, "core", "intel-rapl:0:0", 1_000)
    _zone(root, "psys", "intel-rapl:2", 9_000_000)
    _zone(root, "package-0", "intel-rapl-mmio:0", 3_000)
    return root


def test_rapl_sums_the_packages_and_unwraps_each(powercap):
    counter, reason = open_rapl(powercap)
    assert reason is None and counter.name == "RAPL package energy (package-0, package-1)"
    before = counter.read()
    assert before == (5_000_000, 7_000_000)
    (powercap / "intel-rapl:0" / "energy_uj").write_text("5250000\n")  # 0.25 J on package 0
    (powercap / "intel-rapl:1" / "energy_uj").write_text(f"{2_000_000}\n")  # wrapped: RANGE - 7e6 + 2e6 uJ
    (powercap / "intel-rapl:2" / "energy_uj").write_text("99999999\n")  # psys: not counted
    after = counter.read()
    expected_j = 0.25 + (RANGE_UJ - 7_000_000 + 2_000_000) * 1e-6
    assert counter.joules(before, after) == pytest.approx(expected_j, rel=1e-12)
    assert counter.joules(before, before) == 0


def test_the_resolution_rule(powercap):
    """A pass gets a value only from 10 counter updates on (10 ms with RAPL), and none once it could have
    wrapped a package's counter twice."""
    counter, _ = open_rapl(powercap)
    assert counter.min_pass_s == MIN_UPDATES_PER_PASS * RAPL_UPDATE_S == pytest.approx(0.01)
    assert counter.wrap_s == pytest.approx(RANGE_UJ * 1e-6 / MAX_PACKAGE_POWER_W)
    before = counter.read()
    after = (before[0] + 2_000_000, before[1])
    assert counter.pass_joules(before, after, 0.0099) is None
    assert counter.pass_joules(before, after, 0.01) == pytest.approx(2.0)
    assert counter.pass_joules(before, after, counter.wrap_s * 1.01) is None
    assert counter.pass_joules(None, after, 0.5) is None  # a read that failed


def test_a_read_that_fails_mid_run_is_no_value(powercap):
    counter, _ = open_rapl(powercap)
    before = counter.read()
    (powercap / "intel-rapl:1" / "energy_uj").unlink()
    assert counter.read() is None and counter.pass_joules(before, counter.read(), 1.0) is None


@pytest.mark.parametrize("damage, reason", [
    (lambda root: shutil.rmtree(root), "does not exist"),
    (lambda root: (root / "intel-rapl:0" / "max_energy_range_uj").write_text("lots\n"), "invalid literal"),
    (lambda root: (root / "intel-rapl:0" / "max_energy_range_uj").write_text("0\n"), "is 0, not a range"),
    (lambda root: [shutil.rmtree(root / z) for z in ("intel-rapl:0", "intel-rapl:1")], "no package zone"),
    (lambda root: [(root / "intel-rapl:1" / "energy_uj").unlink(), (root / "intel-rapl:1" / "energy_uj").mkdir()],
     "intel-rapl:1/energy_uj: Is a directory"),
])
def test_why_there_is_no_rapl(powercap, damage, reason):
    damage(powercap)
    counter, why = open_rapl(powercap)
    assert counter is None and why.startswith("no RAPL: ") and reason in why and "\n" not in why


@pytest.mark.skipif(hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0,
                    reason="root reads a file whatever its mode")
def test_an_unreadable_counter_says_permission_denied(powercap):
    (powercap / "intel-rapl:1" / "energy_uj").chmod(0)
    counter, why = open_rapl(powercap)
    assert counter is None and "intel-rapl:1/energy_uj: permission denied (root only since Linux 5.10)" in why


def test_no_nvml_without_its_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # what an environment without nvidia-ml-py imports
    opened = open_energy_counter(["cuda:0"])
    assert opened.counter is None and opened.reason == ("no NVML: the pynvml module is not installed (pip install "
                                                        "nvidia-ml-py)")


def test_the_energy_record_round_trips_and_is_checked():
    record = EnergyRecord(counter="RAPL package energy (package-0)", update_s=0.001, min_pass_s=0.01, passes=40,
                          passes_measured=31)
    assert EnergyRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert "31 of 40 timed passes measured" in record.line() and "under 10 ms" in record.line()
    none = EnergyRecord(reason="no RAPL: /sys/class/powercap does not exist", passes=40)
    assert none.line() == "no energy counter: no RAPL: /sys/class/powercap does not exist"
    for bad in ({"counter": "x", "reason": "y"}, {}, {"reason": "y", "passes": -1}, {"reason": "a\nb"},
                {"counter": "x", "passes": 1, "passes_measured": 2}, {"reason": "y", "joules": 3}):
        with pytest.raises(ValueError):
            EnergyRecord.from_json(bad)
    done = {"lengths": [8], "rows": 3, "elapsed_s": 1.0}
    assert RunDone.from_json(done).energy is None  # a run before energy was recorded
    assert RunDone.from_json(done | {"energy": none.to_json()}).energy == none


ROW = {"model": "m", "weights": "random", "device": "cpu", "dtype": "float32", "phase": "prefill", "batch": 1,
       "n_ctx": 64, "n_cached": 0, "n_new": 64, "repeat": 0, "latency_s": 0.03, "flops": 2_000_000,
       "kv_cache_bytes": 0}


def test_samples_with_and_without_energy(tmp_path):
    with SampleWriter(tmp_path / "s.csv") as writer:
        writer.write(ROW | {"energy_j": 1.25})
        writer.write(ROW | {"repeat": 1})  # no value: empty
    frame = read_samples(tmp_path / "s.csv")
    assert frame["energy_j"].tolist()[0] == 1.25 and math.isnan(frame["energy_j"].tolist()[1])
    older = tmp_path / "older.csv"  # written before the column was
    pd.read_csv(tmp_path / "s.csv").drop(columns="energy_j").to_csv(older, index=False)
    frame = read_samples(older)
    assert list(frame.columns) == list(COLUMNS) and frame["energy_j"].isna().all()
    with SampleWriter(tmp_path / "bad.csv") as writer:
        writer.write(ROW | {"energy_j": -0.5})
    with pytest.raises(UserError, match=r"bad.csv: line 2: energy_j -0.5 is negative"):
        read_samples(tmp_path / "bad.csv")


# -- the sweep writes what the counter gives ------------------------------------------------------------------------
POWER_W = 64  # the synthetic package's power: joules = 64 x seconds, whole microjoules at these costs
TOKEN_S = 2.0**-10  # a prefill or forward pass costs this per token, a decode step this


def test_the_sweep_writes_each_pass_s_joules_or_none(tmp_path, monkeypatch):
    """A synthetic machine: a fake clock moved by each pass's cost and a package counter bumped by 64 W times it
    (given numbers). Every timed pass of 10 ms or more has 64 J/s times its latency; a shorter one none."""
    energy_uj = _zone(tmp_path / "powercap", "package-0", "intel-rapl:0")
    clock = FakeClock()

    def costs(seconds: float) -> float:
        energy_uj.write_text(f"{int(energy_uj.read_text()) + round(POWER_W * seconds * 1e6)}\n")
        return seconds

    charge(monkeypatch, clock, "prefill", lambda n: costs(n * TOKEN_S))
    charge(monkeypatch, clock, "forward", lambda n: costs(n * TOKEN_S))
    charge(monkeypatch, clock, "decode_step", lambda cache: costs(TOKEN_S))
    charge(monkeypatch, clock, "extend", lambda cache, s: costs(s * TOKEN_S))
    charge(monkeypatch, clock, "generate", lambda n_in, n_out: costs((n_in + n_out - 1) * TOKEN_S))
    tiny = save_tiny(tmp_path / "tiny", "gpt2")
    loaded = load_model(ModelSource("tiny", tiny, "local"), torch.device("cpu"), torch.float32)
    counter, _ = open_rapl(tmp_path / "powercap")
    with SampleWriter(tmp_path / "s.csv") as writer:
        Sweep(loaded, writer, lengths=[8, 16, 32], trim_to_budget=False, budget_s=5.0, batch_sizes=[1],
              policy=RepeatPolicy(min_repeats=3, max_repeats=5), clock=clock, energy=counter).run()
    samples = read_samples(tmp_path / "s.csv")
    long_enough = samples["latency_s"] >= counter.min_pass_s
    assert long_enough.any() and (~long_enough).any()  # both sides of the rule are seen
    assert samples.loc[~long_enough, "energy_j"].isna().all()
    measured = samples[long_enough]
    np.testing.assert_allclose(measured["energy_j"], POWER_W * measured["latency_s"], rtol=1e-9)


# -- the fit of given energy values, and its price -------------------------------------------------------------------
WATTS = 40.0


def _run_with_energy(tmp_path: Path, energy_of) -> Path:
    """The committed example run copied, each row's ``energy_j`` set to ``energy_of(rows)`` (given numbers, not a
    measurement) and its run.json saying a counter was read."""
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("run.json", "hardware.json"):
        shutil.copy(EXAMPLE_RUN / name, folder / name)
    samples = pd.read_csv(EXAMPLE_RUN / "samples.csv")
    samples["energy_j"] = energy_of(samples)
    samples.to_csv(folder / "samples.csv", index=False)
    run = json.loads((folder / "run.json").read_text())
    run["done"]["energy"] = EnergyRecord(counter="RAPL package energy (package-0)", update_s=0.001, min_pass_s=0.01,
                                         passes=len(samples), passes_measured=int(samples["energy_j"].notna().sum()),
                                         ).to_json()
    (folder / "run.json").write_text(json.dumps(run))
    return folder


def test_energy_curves_are_fitted_as_latency_is(tmp_path):
    """Energy given as 40 W times each pass's latency: the energy curves fitted are 40 times the latency ones, so a
    whole call's joules are 40 times its seconds; the file validates and reads back."""
    fit = fit_run(_run_with_energy(tmp_path, lambda rows: WATTS * rows["latency_s"]))
    assert all("energy_j" in fit.curves[phase] for phase in ("prefill", "decode", "forward"))
    assert fit.curves["prefill"]["energy_j"].unit == "J" and tuple(map(int, fit.schema_version.split("."))) >= (1, 7)
    assert fit.source["energy"] == {"counter": "RAPL package energy (package-0)"}
    assert validation_error(fit.to_json()) is None
    cost_model = load_cost_model(write_fit(fit, tmp_path / "fits").path)
    for n_in, n_out in ((64, 1), (256, 32), (1000, 16)):
        for cache in (True, False):
            seconds = cost_model.call(n_in, n_out, cache=cache)
            assert cost_model.call(n_in, n_out, cache=cache, metric="energy_j") == pytest.approx(WATTS * seconds,
                                                                                                 rel=1e-6)


def test_phases_without_energy_are_not_priced_in_joules(tmp_path):
    """Decode passes with no energy value (each shorter than the counter can tell): no decode energy curve, and a
    call with a KV cache cannot be priced in joules; one without (forward passes) can."""
    fit = fit_run(_run_with_energy(tmp_path, lambda rows: (WATTS * rows["latency_s"]).where(rows["phase"] != "decode")))
    cost_model = load_cost_model(write_fit(fit, tmp_path / "fits").path)
    assert "energy_j" not in cost_model.curves["decode"] and "energy_j" in cost_model.curves["forward"]
    cost_model.check_energy(cache=False)
    with pytest.raises(MissingCurve, match="no energy_j curve for decode .*: no decode pass lasted long enough for "
                                           r"RAPL package energy \(package-0\) to tell"):
        cost_model.check_energy(cache=True)


def test_breakeven_prices_joules_from_energy_curves(tmp_path, capsys):
    fit = load_cost_model(write_fit(fit_run(_run_with_energy(tmp_path, lambda rows: WATTS * rows["latency_s"])),
                                    tmp_path / "fits").path)
    path = next((tmp_path / "fits").glob("*.json"))
    argv = ["breakeven", "--fit", str(path), "--exercise", "debugging", "--json"]
    capsys.readouterr()
    assert main([*argv, "--metric", "energy_j"]) == 0
    joules = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    seconds = json.loads(capsys.readouterr().out)
    assert joules["unit"] == "J" and seconds["unit"] == "s" and fit.model.name == "gpt2"
    for in_j, in_s in zip(joules["rows"], seconds["rows"]):
        assert in_j["optimistic"] == pytest.approx(WATTS * in_s["optimistic"], rel=1e-6)
        assert in_j["ratio"] == pytest.approx(in_s["ratio"], rel=1e-6)


def test_breakeven_in_joules_without_energy_curves_is_one_line(capfd):
    example_fit = Path(__file__).parents[1] / "fits" / "example" / "gpt2--cpu-intel-xeon-processor-2t.json"
    line = user_error(capfd, ["breakeven", "--fit", str(example_fit), "--metric", "energy_j"])
    assert line.endswith("no energy_j curve for prefill and decode in the cost model of gpt2 on "
                         "cpu-intel-xeon-processor-2t: its run recorded no energy")


# -- a real run on this machine --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_real_run_records_its_counter_or_why_there_is_none(tmp_path, capfd, monkeypatch):
    """Where this machine has no readable counter (no powercap here, or root-only), the run says so in run.json,
    on the console and in the report, writes no energy, and a break-even in joules is refused with the reason;
    where it has one, the passes it can tell have joules and the others none."""
    skip_ceilings(monkeypatch)
    tiny = save_tiny(tmp_path / "tiny", "gpt2")
    # --budget 8: enough to fit three lengths on a busy machine too (the test reads the fit)
    # on the CPU, the counter opened below (a GPU machine's run would read NVML)
    argv = ["run", "--model", str(tiny), "--device", "cpu", "--lengths", "8,16,32", "--budget", "8", "--batch", "1",
            "--out", str(tmp_path / "o"), "--fits", str(tmp_path / "fits")]
    assert main(argv) == 0
    out = capfd.readouterr().out
    (folder,) = (tmp_path / "o").glob("*/tiny")
    samples = read_samples(folder / "samples.csv")
    energy = json.loads((folder / "run.json").read_text())["done"]["energy"]
    expected = open_energy_counter(["cpu"])
    if expected.counter is None:
        assert energy == {"counter": None, "reason": expected.reason, "update_s": None, "min_pass_s": None,
                          "passes": len(samples), "passes_measured": 0}
        assert f"no energy counter: {expected.reason}" in " ".join(out.split())
        assert samples["energy_j"].isna().all()
        assert f"No energy counter: {expected.reason}." in " ".join((folder / "report.md").read_text().split())
        (fit,) = (tmp_path / "fits").glob("tiny--*.json")
        line = user_error(capfd, ["breakeven", "--fit", str(fit), "--metric", "energy_j"])
        assert line.endswith(f"no energy counter where it was measured: {expected.reason}")
    else:
        expected.counter.close()
        assert energy["counter"] == expected.counter.name
        short = samples["latency_s"] < energy["min_pass_s"]
        assert samples.loc[short, "energy_j"].isna().all() and (samples.loc[~short, "energy_j"] >= 0).all()
        assert energy["passes_measured"] == samples["energy_j"].notna().sum()


def _busy(seconds: float) -> None:
    a = torch.randn(256, 256)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        a = (a @ a).tanh()


@pytest.mark.parametrize("device", ["cpu", "cuda:0"])
def test_a_real_counter_reads_a_plausible_power(device):
    """On a machine with a readable counter: joules over half a second's work (a second's on a GPU, whose counter
    is coarser) are positive and under 2 kW per package or board; skipped where there is none."""
    if device != "cpu" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    with open_energy_counter([device]) as opened:
        if opened.counter is None:
            pytest.skip(opened.reason)
        seconds = max(0.5, opened.counter.min_pass_s)
        before, start = opened.counter.read(), time.perf_counter()
        if device == "cpu":
            _busy(seconds)
        else:
            x = torch.randn(4096, 4096, device=device)
            while time.perf_counter() - start < seconds:
                x = (x @ x).tanh()
            torch.cuda.synchronize()
        elapsed_s = time.perf_counter() - start
        joules = opened.counter.pass_joules(before, opened.counter.read(), elapsed_s)
    assert joules is not None and 0 < joules / elapsed_s < 2000 * len(before)
