from profiler.lba.breakeven import sweep
from profiler.lba.calls import positions_needed
from profiler.lba.exercises import EXERCISES, KTask
from profiler.lba.pricing import FittedPricing
from profiler.report.breakeven_section import NO_SURFACES, PARALLEL, breakeven_sections
from profiler.report.document import ReportContext, Table
from profiler.report.inputs import load_run
from profiler.report.uncertainty import CallIntervals
from profiler.report.units import significant
from tests.report_batches import with_batches, without_surfaces


def test_the_report_prices_the_three_exercises(tiny_run):
    folder, _ = tiny_run  # ``run`` ends with the report, break-even section included
    markdown = (folder / "report.md").read_text()
    assert "## Break-even: the paper's three exercises" in markdown
    for exercise in EXERCISES.values():
        figure = folder / f"breakeven-{exercise.name}.png"
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
        assert f"({figure.name})" in markdown
    assert "paper's ratio" in markdown and "the decomposition" in markdown
    # the longest call in positions, by the rule the execution backend runs calls by: 519 for k-task's 512 + 8;
    # longer than the tiny run measured (128), so extrapolated
    longest = positions_needed(KTask.defaults()["n"], KTask.defaults()["out"])
    assert "longest call (positions)" in markdown and f"| {longest:,} \\* |" in markdown


def _tables(sections):
    return [block for section in sections for block in section.blocks if isinstance(block, Table)]


def _number(cell: str) -> float:
    """A table's number as written, thousands grouped: 1,437."""
    return float(cell.replace(",", ""))


def test_the_parallel_schedule_beside_the_sequential_sum(tiny_run, tmp_path):
    folder, fits = tiny_run
    copy, cost_model = with_batches(folder, fits, tmp_path / "tiny")
    data = load_run(copy, cost_model=cost_model)
    ctx = ReportContext(folder=copy, cost_model=cost_model, run=data.run, hardware=data.hardware,
                        samples=data.samples, points=data.points, calls=CallIntervals(cost_model, draws=50))
    sections = breakeven_sections(ctx)
    pricing = FittedPricing(cost_model)
    for exercise, table in zip(EXERCISES.values(), _tables(sections)):
        values = [float(v) for v in exercise.main_values]
        priced = sweep(exercise, exercise.main, values, exercise.defaults(), pricing, PARALLEL)
        makespan = table.columns.index("ratio in parallel: makespan")
        assert [row[makespan] for row in table.rows] == [significant(r.ratio) for r in priced.priced("makespan").rows]
        assert [row[table.columns.index("ratio")] for row in table.rows] == [significant(r.ratio) for r in priced.rows]
    # debugging's QA reports and fixes are groups: batched, its decomposition gains more than in the sequential sum
    debugging = _tables(sections)[list(EXERCISES).index("debugging")]
    assert all(_number(row[-2]) > _number(row[3]) for row in debugging.rows)
    (make,) = [make for make, path in ctx.figures if path.name == "breakeven-debugging.png"]
    (parallel,) = [line for line in make().axes[0].get_lines() if line.get_label().startswith("fitted costs, parallel")]
    makespan = sweep(EXERCISES["debugging"], "k", [float(v) for v in EXERCISES["debugging"].main_values],
                     EXERCISES["debugging"].defaults(), pricing, PARALLEL).priced("makespan")
    assert list(parallel.get_ydata()) == [row.ratio for row in makespan.rows]


def test_a_fit_without_surfaces_says_how_to_price_in_parallel(tiny_run):
    folder, fits = tiny_run
    data = load_run(folder, cost_model=without_surfaces(fits))
    ctx = ReportContext(folder=folder, cost_model=data.cost_model, run=data.run, hardware=data.hardware,
                        samples=data.samples, points=data.points, calls=CallIntervals(data.cost_model, draws=50))
    sections = breakeven_sections(ctx)
    assert NO_SURFACES in sections[0].blocks[0]
    assert all("ratio in parallel: makespan" not in table.columns for table in _tables(sections))
