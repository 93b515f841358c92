import json
import shutil
from pathlib import Path

import pytest

from profiler.cli.main import main
from profiler.lba.breakeven_document import FORMAT_VERSION, BreakevenDocument
from tests.json_shape import key_paths
from tests.user_error import user_error

DATA = Path(__file__).parent / "data"
EXAMPLE_FIT = Path(__file__).parents[1] / "fits" / "example" / "gpt2--cpu-intel-xeon-processor-2t.json"


@pytest.fixture(scope="module")
def fit_path(tiny_fit):
    """The fit a real run of a tiny model ends with."""
    return tiny_fit[2]


def _fails_with_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("argv, message", [
    (["--exercise", "routing"], "unknown exercise 'routing': one of ktask, debugging, evolution, all"),
    (["--exercise", "debugging", "--vary", "q", "--values", "1,2"], "debugging has no parameter 'q' to vary: one of k,"),
    (["--exercise", "ktask", "--set", "l=3"], "ktask has no parameter 'l': one of k, n, c, out"),
    (["--exercise", "debugging", "--vary", "l"], "--vary l: give its grid with --values"),
    (["--exercise", "debugging", "--values", "1:3", "--set", "b=2"], "b (bugs) must not exceed k"),
    (["--role", "qa=x.json"], "--role and --no-cache need --fit"),
    (["--no-cache"], "--role and --no-cache need --fit"),
    (["--fit", "missing.json"], "missing.json: not found"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    _fails_with_one_line(capsys, ["breakeven", *argv], message)


def test_paper_primitive_table(capsys):
    argv = ["breakeven", "--primitive", "paper", "--exercise", "debugging", "--vary", "k", "--values", "2,4,8,16,32",
            "--set", "l=64", "--set", "b=2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "iterative debugging" in out and "developer 9" in out
    assert "none in range: the optimized variant costs less throughout" in out


def test_json_document(capsys):
    argv = ["breakeven", "--exercise", "ktask", "--values", "1:4", "--set", "n=64", "--set", "c=32", "--json"]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document) >= {"exercise", "vary", "params", "rows", "breakeven"}
    assert document["vary"] == "k" and [row["value"] for row in document["rows"]] == [1, 2, 3, 4]
    assert set(document["rows"][0]["roles"]) == {"optimistic", "optimized"}
    assert set(document["rows"][0]["roles"]["optimized"]) == {"delegator", "specialist"}
    assert 1 < document["breakeven"] < 2


def test_json_is_todays_document_with_the_positions_rule(capsys):
    """``breakeven --json`` as it was printed before the documents were typed (tests/data), but for the new
    format version, the longest call, now the positions it needs: one less than read plus written, and the
    parameters added since at their defaults (load T = 1, evolution's lam = 1), which give today's numbers."""
    assert main(["breakeven", "--primitive", "paper", "--exercise", "all", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    before = json.loads((DATA / "breakeven-paper-all.json").read_text())
    for document, old in zip(printed["exercises"], before["exercises"], strict=True):
        assert document.pop("format_version") == FORMAT_VERSION
        assert document["params"].pop("load") == 1
        assert document["params"].pop("lam", 1) == 1
        for row, old_row in zip(document["rows"], old["rows"], strict=True):
            assert row.pop("longest_context") == old_row.pop("longest_context") - 1
        assert document == old
    for old in json.loads((DATA / "breakeven-paper-all.json").read_text())["exercises"]:  # read as version 1
        assert BreakevenDocument.from_json(old).to_json() == old | {"format_version": 1}


def test_monte_carlo_rows(capsys):
    argv = ["breakeven", "--exercise", "evolution", "--values", "1:3", "--monte-carlo", "50", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert all(row["monte_carlo"]["optimistic"]["seeds"] == 50 for row in rows)


def test_help_lists_every_parameter_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["breakeven", "--help"])
    out = capsys.readouterr().out
    assert "delegator_scale" in out and "report           16" in out and "system_prompt" in out
    assert "p                0.5    1e-06 to 1  " in out  # each parameter's range, as its check states it


def test_all_with_a_fit_writes_a_figure_per_exercise_beside_it(capsys, fit_path):
    assert main(["breakeven", "--fit", str(fit_path), "--exercise", "all", "--json"]) == 0
    documents = json.loads(capsys.readouterr().out)["exercises"]
    assert [d["exercise"] for d in documents] == ["ktask", "debugging", "evolution"]
    before = json.loads((DATA / "breakeven-gpt2-all.json").read_text())  # gpt2's fit, before the types
    added = {f"[]/{at}params/{name}" for at in ("", "practical/") for name in ("load", "lam")}
    assert key_paths(documents) == key_paths(before["exercises"]) | {"[]/format_version"} | added
    assert [BreakevenDocument.from_json(d).to_json() for d in documents] == documents
    for document in documents:
        figure = fit_path.with_name(f"{fit_path.stem}.breakeven-{document['exercise']}.png")
        assert document["figure"] == str(figure)
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
        assert document["unit"] == "s" and document["practical"]["paper_ratio"] > 0
    assert any("linearity in m" in note for note in documents[0]["assumptions"])  # one fit: no size law


def test_no_cache_costs_more(capsys, tmp_path):
    # gpt2's measured fit (the committed example): a tiny model's decode step costs about what its no-cache pass
    # does, so with a fit of its noisy timings the two could come out either way
    fit_path = Path(shutil.copy(EXAMPLE_FIT, tmp_path))

    def optimistic(*extra):
        assert main(["breakeven", "--fit", str(fit_path), "--exercise", "debugging", "--values", "2,4", "--json",
                     *extra]) == 0
        return json.loads(capsys.readouterr().out)["rows"][0]["optimistic"]

    assert optimistic("--no-cache") > 1.5 * optimistic()


def test_the_family_beside_the_fit_gives_the_size_law(fit_path, tmp_path):
    from profiler.cli.breakeven import fitted_pricing

    folder = tmp_path / "fits"
    folder.mkdir()
    base = shutil.copy(fit_path, folder / fit_path.name)
    document = json.loads(fit_path.read_text())
    document["model"] |= {"name": "tiny2", "non_embedding_params": 2 * document["model"]["non_embedding_params"]}
    for curve in (metrics["latency_s"] for metrics in document["curves"].values()):  # tiny2 costs 1.5 times more
        for name in ("a", "b"):
            curve["params"][name]["value"] *= 1.5
            curve["params"][name]["ci95"] = [v * 1.5 for v in curve["params"][name]["ci95"]]
        for candidate in curve["candidates"]:
            candidate["params"] = {name: value * (1.5 if name != "p" else 1) for name, value in candidate["params"].items()}
    (folder / fit_path.name.replace("tiny--", "tiny2--")).write_text(json.dumps(document))
    pricing = fitted_pricing([base], [], cache=True, metric="latency_s")
    assert [m.model.name for m in pricing.family.members] == ["tiny", "tiny2"]
    assert "size law of the family tiny, tiny2" in pricing.assumptions(resized=True)[0]
    # twice tiny's size is tiny2: the law (through the members' quadratic candidates) prices it 1.5 times tiny
    at_tiny = pricing.family.at_params(document["model"]["non_embedding_params"] / 2).call(32, 4)
    assert pricing.price("generalist", 32, 4, size=2.0) == pytest.approx(1.5 * at_tiny, rel=1e-6)
    alone = fitted_pricing([fit_path], [], cache=True, metric="latency_s")
    assert alone.family is None


@pytest.mark.parametrize("argv, message", [
    (["--schedule", "eager"], "argument --schedule: invalid choice: 'eager'"),
    (["--schedule", "parallel", "--max-batch", "0"], "argument --max-batch: 0: expected a whole number from 1 to 1,"),
    (["--schedule", "parallel", "--devices", "two"], "argument --devices: two: expected a whole number from 1"),
    (["--schedule", "parallel", "--devices", "1e9"], "expected a whole number"),
    (["--max-batch", "8"], "--max-batch and --devices lay out a parallel schedule: add --schedule parallel"),
    (["--devices", "2", "--schedule", "sequential"], "add --schedule parallel"),
    (["--schedule", "parallel", "--fit", "x.json", "--no-cache"], "which keep a KV cache: drop --no-cache"),
    (["--schedule", "parallel", "--fit", "x.json", "--metric", "flops"], "use --metric latency_s"),
    (["--schedule", "parallel", "--exercise", "evolution", "--set", "load=100000"], "evolution: these values take"),
    (["--exercise", "ktask", "--set", "load=0"], "load must be a whole number at least 1"),
    (["--exercise", "evolution", "--set", "lam=1.5"], "lam must be a whole number at least 1"),
])
def test_schedule_mistakes_are_one_line_and_exit_2(capfd, argv, message):
    assert message in user_error(capfd, ["breakeven", *argv])


def test_parallel_json_carries_both_prices_beside_the_sequential_rows(capsys):
    common = ["breakeven", "--exercise", "debugging", "--values", "2,4,8", "--set", "load=4", "--json"]
    assert main(common) == 0
    sequential = json.loads(capsys.readouterr().out)
    assert main([*common, "--schedule", "parallel", "--devices", "2"]) == 0
    parallel = json.loads(capsys.readouterr().out)
    prices = parallel.pop("prices")
    assert parallel.pop("schedule") == {"kind": "parallel", "max_batch": None, "devices": 2}
    assert parallel == sequential  # the sequential keys keep their meaning
    assert [price["measure"] for price in prices] == ["device_time", "makespan"]
    assert all(set(price) >= {"rows", "breakeven", "winner_throughout", "unit", "assumptions"} for price in prices)
    makespan = [row["optimized"] for row in prices[1]["rows"]]
    assert makespan[0] == makespan[-1] < prices[0]["rows"][0]["optimized"]  # the focused variant's depth


def test_parallel_tables_show_both_prices_then_the_sequential_break_even(capsys):
    assert main(["breakeven", "--exercise", "ktask", "--values", "1,2,4,8", "--set", "load=8", "--schedule",
                 "parallel", "--devices", "4"]) == 0
    out = capsys.readouterr().out
    assert out.index("in device time") < out.index("in makespan") < out.index("sequential sum (the paper's count)")
    assert "list-scheduled longest first on 4 devices" in out


def test_all_in_parallel_draws_the_makespan_beside_the_fit(capsys, tmp_path):
    fit_path = Path(shutil.copy(EXAMPLE_FIT, tmp_path))  # no batch surfaces: a batch of one call, on 4 devices
    assert main(["breakeven", "--fit", str(fit_path), "--exercise", "all", "--schedule", "parallel", "--devices", "4",
                 "--json"]) == 0
    documents = json.loads(capsys.readouterr().out)["exercises"]
    for document in documents:
        makespan = document["prices"][1]
        assert makespan["measure"] == "makespan" and makespan["practical"]["ratio"] > 0
        assert document["practical"]["ratio"] > 0  # the sequential one, as before
        assert Path(document["figure"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert any("at most 1 calls a batch" in note for note in makespan["assumptions"])


# ---- prefix reuse ------------------------------------------------------------------------------------------------

@pytest.fixture
def extend_fit(tmp_path):
    """gpt2's measured fit (the committed example) with a known extend surface added: it prices a cached prefix."""
    from tests.fitted import known_extend

    document = json.loads(EXAMPLE_FIT.read_text()) | {"schema_version": "1.6", "extend": known_extend(0.5)}
    path = tmp_path / EXAMPLE_FIT.name
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("argv, message", [
    (["--cache-capacity", "-1", "--prefix-cache", "on"], "argument --cache-capacity: -1: expected a whole number from 1"),
    (["--cache-capacity", "abc", "--prefix-cache", "on"], "abc: expected a whole number from 1 to 1,000,000,000"),
    (["--cache-capacity", "1e99", "--prefix-cache", "on"], "1e99: expected a whole number from 1 to 1,000,000,000"),
    (["--cache-capacity", "0", "--prefix-cache", "on"], "0: expected a whole number from 1 to 1,000,000,000 (tokens)"),
    (["--prefix-cache", "maybe"], "argument --prefix-cache: invalid choice: 'maybe'"),
    (["--cache-capacity", "100"], "--cache-capacity sizes the prefix cache: add --prefix-cache on"),
    (["--prefix-cache", "on", "--schedule", "parallel"], "--prefix-cache on prices calls one after another"),
    (["--prefix-cache", "on", "--fit", "x.json", "--no-cache"], "keeps KV caches between calls: drop --no-cache"),
    (["--prefix-cache", "on", "--fit", "x.json", "--metric", "flops"], "extend surface, a time: use --metric latency_s"),
    (["--prefix-cache", "on", "--exercise", "evolution", "--fit", str(EXAMPLE_FIT)], "no extend surface in the cost "
                                                                                       "model of gpt2"),
])
def test_prefix_cache_mistakes_are_one_line_and_exit_2(capfd, argv, message):
    assert main(["breakeven", *argv]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_replay_of_too_many_calls_is_refused_before_it_runs(capfd, extend_fit):
    assert main(["breakeven", "--fit", str(extend_fit), "--prefix-cache", "on", "--exercise", "evolution",
                 "--values", "20"]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "evolution: with prefix reuse these values are priced by replaying" in err, err


def test_prefix_reuse_json_records_the_cache_and_the_chat_costs_less(capsys, extend_fit):
    def document(*extra):
        assert main(["breakeven", "--fit", str(extend_fit), "--exercise", "debugging", "--values", "2,4", "--set",
                     "system_prompt=200", "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    plain, reusing = document(), document("--prefix-cache", "on", "--cache-capacity", "100000")
    assert reusing["reuse"] == {"capacity_tokens": 100000} and "reuse" not in plain
    for before, after in zip(plain["rows"], reusing["rows"]):
        assert after["optimistic"] < before["optimistic"] and after["optimized"] < before["optimized"]
    assert BreakevenDocument.from_json(reusing).to_json() == reusing
    assert document("--prefix-cache", "off") == plain


def test_prefix_reuse_tables_and_figures_for_every_exercise(capsys, extend_fit):
    assert main(["breakeven", "--fit", str(extend_fit), "--prefix-cache", "on", "--values", "2:4"]) == 0
    out = capsys.readouterr().out
    assert out.count("with prefix reuse") == 3 and "each program run 8 times" in out
    for name in ("ktask", "debugging", "evolution"):
        assert extend_fit.with_name(f"{extend_fit.stem}.breakeven-{name}.png").read_bytes()[:4] == b"\x89PNG"
