import pandas as pd
import pytest
import torch

from profiler.measure.catalog import ModelSource
from profiler.measure.flops import count_flops, pass_flops
from profiler.measure.flops_check import FORMULA_TOLERANCE, formula_check
from profiler.measure.loading import load_model
from profiler.measure.passes import Passes
from tests.families import save_bamba, save_doge_moe, save_falcon_h1, save_family, save_lfm2, save_olmo_hybrid


def _rows(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["phase", "flops", "flops_counted"])


def test_passes_within_the_tolerance_are_not_off():
    check = formula_check(_rows(("prefill", 1000, 1000), ("decode", 1000, 1019), ("forward", 1000, None)))
    assert (check.passes, check.low, check.high, check.off) == (2, 1.0, 1.019, False)


def test_one_pass_beyond_it_is_said_with_its_phase():
    check = formula_check(_rows(("prefill", 1000, 1000), ("decode", 1000, 1030), ("extend", 1000, 900)))
    assert check.phases_off == ("decode", "extend") and check.off
    assert check.sentence() == ("FLOPs counted on 3 passes are 0.9 to 1.03 times the formula's (decode, extend off "
                                "by more than 2%): the formula does not know all of this architecture's work, and "
                                "the flops column, the FLOP curves and FLOP/s follow it; read them with care")


def test_nothing_counted_is_no_check():
    assert formula_check(_rows(("prefill", 1000, None))) is None
    assert formula_check(_rows(("prefill", None, 500))) is None  # an endpoint run of a model not known here
    assert formula_check(pd.DataFrame({"phase": ["prefill"], "flops": [1000]})) is None  # written before counts


def _checked(folder) -> pd.DataFrame:
    """A prefill of 24 tokens and a decode step on its cache, counted, beside the formula's FLOPs."""
    loaded = load_model(ModelSource(folder.name, folder, "local"), torch.device("cpu"), torch.float32)
    passes, arch = Passes(loaded), loaded.architecture
    cache, prefill = count_flops(lambda: passes.prefill(24))
    _, decode = count_flops(lambda: passes.decode_step(cache))
    return formula_check(_rows(("prefill", pass_flops(arch, 24, 24), prefill),
                               ("decode", pass_flops(arch, 1, 25), decode)))


@pytest.mark.parametrize("model", ["llama", "qwen2_moe", "deepseek_v3", "llama4_text"])
def test_a_family_the_formula_knows_is_not_off(model, tmp_path):
    assert not _checked(save_family(tmp_path / model, model, max_positions=64)).off


@pytest.mark.parametrize("save", [save_lfm2, save_olmo_hybrid, save_bamba, save_falcon_h1])
def test_a_hybrid_the_formula_knows_is_not_off(save, tmp_path):
    """LFM2 and OLMo-Hybrid as their checkpoints have them, a convolution or gated-delta-rule layer first; Bamba's
    Mamba-2 layer and Falcon-H1's Mamba-2 beside attention in every layer (outside the matrix)."""
    assert not _checked(save(tmp_path / save.__name__)).off


def test_work_the_formula_does_not_know_is_said(tmp_path):
    """The formula counts Doge's experts (one row and one column each, found by product keys) as experts it knows,
    gated MLPs of the dense MLP's width: more than they run."""
    doge = _checked(save_doge_moe(tmp_path / "doge_moe"))
    assert doge.phases_off == ("prefill", "decode") and doge.low < 1 - FORMULA_TOLERANCE


@pytest.mark.slow
def test_a_run_of_such_a_model_says_so_on_the_console_and_in_its_report(tmp_path, monkeypatch, capsys):
    from profiler.cli.main import main
    from tests.user_error import skip_ceilings

    skip_ceilings(monkeypatch)
    folder = save_doge_moe(tmp_path / "doge_moe")
    assert main(["run", "--model", str(folder), "--lengths", "16,32,64", "--budget", "8",
                 "--out", str(tmp_path / "reports"), "--fits", str(tmp_path / "fits")]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "times the formula's (prefill, " in printed and "forward off by more than 2%)" in printed
    (report,) = (tmp_path / "reports").glob("*/doge_moe/report.md")
    assert "the formula does not know all of this architecture's work" in report.read_text()
