import numpy as np
import pytest

from profiler.lba.breakeven import evaluate, sweep
from profiler.lba.exercises import EXERCISES
from profiler.lba.prefix_cache import Reuse
from profiler.lba.pricing import FittedPricing
from profiler.lba.reuse import cell_work
from profiler.lba.schedule import SEQUENTIAL, Schedule
from profiler.report.breakeven_section import breakeven_sections
from profiler.report.document import ReportContext, Table
from profiler.report.inputs import load_run
from profiler.report.system_prompt_table import REPLAY_WORK, report_grid, system_prompt_table
from profiler.report.uncertainty import CallIntervals
from profiler.report.units import significant
from tests.fitted import cost_model
from tests.report_extend import with_extend, without_extend

PROMPTS = (0, 200, 2000)


@pytest.fixture(scope="module")
def table() -> Table:
    """Every exercise priced by known curves and a known extend surface, on a model of 8,192 positions."""
    return system_prompt_table(FittedPricing(cost_model(max_positions=8192, extend=True)))


def _cells(document, vary: str) -> str:
    if document.breakeven is not None:
        return f"{vary} = {document.breakeven:.3g}"
    return f"none: {document.winner_throughout} wins" if document.winner_throughout else "none in range"


def test_each_prompt_is_priced_with_and_without_reuse_as_breakeven_prices_it(table):
    pricing = FittedPricing(cost_model(max_positions=8192, extend=True))
    assert [(row[0], row[1]) for row in table.rows] == [(name, f"{p:,}") for name in EXERCISES for p in PROMPTS]
    for exercise, rows in zip(EXERCISES.values(), np.reshape(np.array(table.rows, dtype=object), (3, 3, -1))):
        grid = report_grid(exercise)
        for prompt, row in zip(PROMPTS, rows):
            params = exercise.defaults() | {"system_prompt": float(prompt)}
            default = params.pop(exercise.main)
            for column, schedule in ((2, SEQUENTIAL), (3, Schedule(reuse=Reuse(None)))):
                assert row[column] == _cells(sweep(exercise, exercise.main, list(grid), params, pricing, schedule),
                                             exercise.main)
                ratio = float(evaluate(exercise, params | {exercise.main: default}, pricing, schedule)["ratio"])
                assert row[column + 2] == significant(ratio)


def test_reuse_changes_what_a_system_prompt_costs_where_a_model_is_called_again(table):
    for name in ("debugging", "evolution"):
        at_0, at_200, at_2000 = [row for row in table.rows if row[0] == name]
        assert float(at_2000[4]) < float(at_200[4]) < float(at_0[4])  # a prompt every call prefills dilutes it
        assert float(at_2000[5]) > float(at_2000[4])  # computed once with reuse: much of the ratio comes back
    ktask = [row for row in table.rows if row[0] == "ktask"]
    assert all(row[2] == row[3] and row[4] == row[5] for row in ktask)  # at load 1 every model is called once


def test_the_report_prices_reuse_only_as_far_as_its_replay_work_allows():
    for exercise in EXERCISES.values():
        grid, full = report_grid(exercise), sorted(float(v) for v in exercise.main_values)
        params = {name: np.asarray(value, dtype=float) for name, value in exercise.defaults().items()}
        params["system_prompt"] = np.asarray(2000.0)
        work = cell_work(exercise, params | {exercise.main: np.array(full)})
        assert list(grid) == full[:len(grid)] and work[:len(grid)].sum() <= REPLAY_WORK
        if len(grid) < len(full):
            assert work[:len(grid) + 1].sum() > REPLAY_WORK
    assert report_grid(EXERCISES["evolution"]) == tuple(float(k) for k in range(1, 9))
    assert report_grid(EXERCISES["ktask"]) == tuple(float(v) for v in EXERCISES["ktask"].main_values)


def test_the_breakeven_section_has_the_table_only_with_the_extend_surface(tmp_path):
    folder, cm = with_extend(tmp_path / "gpt2")
    for model, expected in ((cm, 1), (without_extend(cm), 0)):
        data = load_run(folder, cost_model=model)
        ctx = ReportContext(folder=data.folder, cost_model=model, run=data.run, hardware=data.hardware,
                            samples=data.samples, points=data.points, calls=CallIntervals(model, draws=50))
        (section,) = breakeven_sections(ctx)
        tables = [block for block in section.blocks if isinstance(block, Table) and "system prompt (tokens)"
                  in block.columns]
        assert len(tables) == expected
        if expected:  # gpt2 takes 1,024 positions: a 2,000-token prompt leaves no call it can make
            long = [row for row in tables[0].rows if row[1] == "2,000"]
            assert len(long) == 3 and all(row[2:6] == ("-",) * 4 and row[6].startswith(
                "not priced: a 2,000-token system prompt: at every k") for row in long)
        assert any("system prompt" in block for block in section.blocks if isinstance(block, str)) == bool(expected)
