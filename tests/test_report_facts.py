"""The run's facts in a report (``profiler.report.facts``): what was measured, in how long, on what budget, and what
the curves say about the quadratic term."""

from __future__ import annotations

from types import SimpleNamespace

from profiler.measure.run_document import RunAsked, RunDone
from profiler.report.facts import derived_lines, run_facts


def _samples_fact(done: RunDone) -> str:
    run = SimpleNamespace(asked=RunAsked(model="qwen2.5-0.5b", budget_s=37.6, seed=0), done=done,
                          command=["python", "-m", "profiler", "run", "--model", "qwen2.5-0.5b"])
    return dict(run_facts(run))["samples"]


def test_the_budget_is_the_one_the_run_had():
    assert _samples_fact(RunDone(lengths=[8, 16, 32], rows=120, elapsed_s=37.1)) == (
        "120 timed passes in 37 s (budget 37.6 s per model, seed 0)")


def test_a_budget_raised_for_the_curves_is_said():
    done = RunDone(lengths=[8, 11, 16], rows=90, elapsed_s=44.8, budget_raised_to_s=46.0)
    assert _samples_fact(done) == (
        "90 timed passes in 45 s (budget 37.6 s per model, raised to 46 s for the curves, seed 0)")


def test_caches_built_by_prefills_are_a_fact_of_their_own():
    run = SimpleNamespace(asked=RunAsked(model="m", budget_s=10.0, seed=0), command=["python", "-m", "profiler"],
                          done=RunDone(lengths=[8, 16], rows=9, elapsed_s=8.7, caches_prefilled="cache layer 0 is a X"))
    assert dict(run_facts(run))["decode and extend caches"] == "built by prefills, at their cost: cache layer 0 is a X"
    run.done = RunDone(lengths=[8, 16], rows=9, elapsed_s=8.7)
    assert "decode and extend caches" not in dict(run_facts(run))


def _calls_fact(skipped: list[dict]) -> str:
    done = RunDone(lengths=[8, 1024], rows=40, elapsed_s=40.0, generate_pairs=[[256, 16], [1016, 8]], skipped=skipped)
    run = SimpleNamespace(asked=RunAsked(model="gpt2", budget_s=40.1, seed=0), command=["python", "-m", "profiler"],
                          done=done)
    return dict(run_facts(run))["whole calls measured"]


def test_whole_calls_the_budget_or_memory_left_out_are_not_said_measured():
    over_budget = {"n_ctx": 1016, "n_new": 8, "phase": "generate", "reason": "time budget"}
    assert _calls_fact([over_budget]) == "256 in/16 out"
    assert _calls_fact([{"n_ctx": 272, "phase": "generate", "reason": "out of memory"}, over_budget]) == "none"
    assert _calls_fact([{"n_ctx": 1016, "reason": "time budget"}]) == "256 in/16 out, 1016 in/8 out"  # a length


def _forward_line(n_ctx: float | None, within: bool, max_positions: int | None) -> str:
    horizon = {"n_ctx": n_ctx, "within_measured_range": within}
    model = SimpleNamespace(derived={"forward": {"overhead_s": 0.01, "cost_per_token_s": 2e-4,
                                                 "linearity_horizon": {"10%": horizon}}})
    (line,) = derived_lines(model, max_positions)
    return line


def test_a_negligible_quadratic_term_is_said_to_stay_small_within_the_positions():
    """A near-zero quadratic coefficient puts its 10% horizon at an absurd length: the line says what it means."""
    line = _forward_line(4.366806535303058e15, within=False, max_positions=1024)
    assert line.endswith("the quadratic term stays under 10% up to the model's 1,024 positions.")
    assert "4,366" not in line


def test_a_horizon_inside_the_positions_is_given_with_where_it_lies():
    assert _forward_line(700.0, within=False, max_positions=1024).endswith(
        "the quadratic term is 10% of the cost at n = 700 (beyond the measured lengths).")
    assert _forward_line(None, within=False, max_positions=1024).endswith(
        "the quadratic term never reaches 10% (linear).")


def test_a_larger_share_goes_unsaid_once_a_smaller_one_stays_under_within_the_positions():
    horizons = {"10%": {"n_ctx": 5e3, "within_measured_range": False},
                "50%": {"n_ctx": 4e4, "within_measured_range": False}}
    model = SimpleNamespace(derived={"forward": {"overhead_s": 0.06, "cost_per_token_s": 1.3e-3,
                                                 "linearity_horizon": horizons}})
    (line,) = derived_lines(model, 1024)
    assert line == ("forward: 60.0 ms per pass plus 1.30 ms per token on average over the measured lengths; the "
                    "quadratic term stays under 10% up to the model's 1,024 positions.")


def test_a_growth_held_at_the_flops_ceiling_is_said():
    model = SimpleNamespace(derived={"prefill": {"overhead_s": 0.17, "cost_per_token_s": 4e-3,
                                                 "growth_at_ceiling": True}})
    (line,) = derived_lines(model, 32768)
    assert line == ("prefill: 170 ms per pass plus 4.00 ms per token on average over the measured lengths; its growth "
                    "beyond linear held at 4 times the FLOPs' (the samples bent further: over a short range a slow "
                    "stretch reads as attention).")
    del model.derived["prefill"]["growth_at_ceiling"]
    assert "FLOPs" not in derived_lines(model, 32768)[0]


def test_a_slope_near_zero_is_said_as_what_the_context_adds_not_as_a_vanishing_time():
    """gpt2's decode on a 2-core CPU fitted a slope of 7e-19 s a token: 0.000000000726 ns was printed."""
    model = SimpleNamespace(derived={"decode": {"overhead_s": 0.0452, "cost_per_token_s": 7.26e-19}})
    assert derived_lines(model, 1024) == [
        "decode: 45.2 ms per pass; the context up to the model's 1,024 positions adds under 1% to it."]
    model.derived["decode"]["cost_per_token_s"] = 7.7e-6  # 7.9 ms at 1,024: 17% of a pass
    assert derived_lines(model, 1024) == [
        "decode: 45.2 ms per pass plus 7.70 µs per token of context on average over the measured lengths."]


def test_the_part_of_a_composite_model_measured_is_a_fact_after_the_model():
    from profiler.report.facts import model_facts

    model = {"name": "vl", "model_type": "gemma3_text", "params": 2e6, "non_embedding_params": 1e6, "layers": 2,
             "hidden": 64, "heads": 4, "kv_heads": 2, "max_positions": 128, "dtype": "float32",
             "attn_implementation": "sdpa", "random_weights": True, "part_measured": "the language model of a X"}
    facts = model_facts(model)
    assert facts[1] == ("part measured", "the language model of a X")
    assert "part measured" not in dict(model_facts({**model, "part_measured": None}))
