import csv

import pytest

from profiler.errors import UserError
from profiler.measure.samples import COLUMNS, SampleWriter, read_samples


def test_rows_reach_the_disk_as_written(tmp_path):
    path = tmp_path / "samples.csv"
    writer = SampleWriter(path)
    writer.write({"model": "m", "phase": "prefill", "n_ctx": 8, "n_new": 8, "repeat": 0, "latency_s": 0.5,
                  "peak_mem_reserved_bytes": None})
    with path.open() as f:  # read while the writer is still open: nothing is buffered
        rows = list(csv.DictReader(f))
    assert rows[0]["latency_s"] == "0.5" and rows[0]["peak_mem_reserved_bytes"] == ""
    writer.close()


def test_required_columns():
    required = {"model", "device", "dtype", "phase", "n_ctx", "n_new", "repeat", "latency_s", "flops",
                "peak_mem_bytes", "kv_cache_bytes"}
    assert required <= set(COLUMNS)


ROW = {"model": "m", "weights": "random", "device": "cpu", "dtype": "float32", "phase": "decode", "batch": 1,
       "n_ctx": 100, "n_cached": 100, "n_new": 1, "repeat": 0, "latency_s": 0.03, "flops": 2_000_000,
       "flops_counted": None, "peak_mem_bytes": None, "peak_mem_reserved_bytes": None, "kv_cache_bytes": 0,
       "energy_j": None}


def test_read_back(tmp_path):
    with SampleWriter(tmp_path / "s.csv") as writer:
        writer.write(ROW)
        writer.write(ROW | {"repeat": 1, "latency_s": 0.031, "peak_mem_bytes": 123})
    frame = read_samples(tmp_path / "s.csv", model="m", dtype="float32")
    assert list(frame.columns) == list(COLUMNS) and frame.loc[0, "n_ctx"] == 100
    assert frame["n_ctx"].dtype == "int64" and frame["latency_s"].tolist() == [0.03, 0.031]
    assert frame["peak_mem_bytes"].isna().tolist() == [True, False]  # not measured is empty, not 0


def test_every_row_a_run_writes_reads_back(tmp_path):
    """What the sweep writes (empty cells where nothing was measured) passes the reader's checks."""
    with SampleWriter(tmp_path / "s.csv") as writer:
        for phase, n_ctx, n_cached, n_new in (("prefill", 8, 0, 8), ("decode", 8, 8, 1), ("extend", 8, 8, 16),
                                              ("forward", 8, 0, 8), ("generate", 8, 0, 16)):
            writer.write(ROW | {"phase": phase, "n_ctx": n_ctx, "n_cached": n_cached, "n_new": n_new,
                                "kv_cache_bytes": 4096})
    frame = read_samples(tmp_path / "s.csv")
    assert list(frame["phase"]) == ["prefill", "decode", "extend", "forward", "generate"]
    assert frame["n_cached"].tolist() == [0, 8, 8, 0, 0] and frame["n_cached"].dtype == "int64"


def test_a_model_named_like_a_missing_value_keeps_its_name(tmp_path):
    with SampleWriter(tmp_path / "s.csv") as writer:
        writer.write(ROW | {"model": "nan"})
        writer.write(ROW | {"model": "nan", "repeat": 1})
    assert set(read_samples(tmp_path / "s.csv", model="nan")["model"]) == {"nan"}


ONLY_BATCHED = "only prefill and decode are measured with more than one sequence"


@pytest.mark.parametrize("change, message", [
    ({"latency_s": -1}, "line 3: latency_s -1.0 is not a positive time"),
    ({"n_ctx": 2.5}, "line 3: n_ctx 2.5 is not a whole number"),
    ({"repeat": None}, "line 3: repeat is missing"),
    ({"phase": "sideways"}, "line 3: phase 'sideways' is not a phase (prefill, decode, extend, forward, generate)"),
    ({"device": "cuda:0"}, "2 values of device ('cpu', 'cuda:0'): a samples file is one run"),
    ({"weights": "trained"}, "2 values of weights ('random', 'trained'): a samples file is one run"),
    ({"batch": 0}, "line 3: batch 0 is less than 1"),
    ({"batch": 1.5}, "line 3: batch 1.5 is not a whole number"),
    ({"batch": None}, "line 3: batch is missing"),
    ({"batch": 10**6}, "line 3: batch 1000000 is more sequences than a run measures (4,096)"),
    ({"phase": "forward", "batch": 4}, f"line 3: batch 4 in a forward pass: {ONLY_BATCHED}"),
    ({"phase": "generate", "batch": 2}, f"line 3: batch 2 in a generate pass: {ONLY_BATCHED}"),
    ({"phase": "extend", "n_new": 16, "batch": 2}, f"line 3: batch 2 in an extend pass: {ONLY_BATCHED}"),
    ({"n_cached": 99}, "line 3: n_cached 99 in a decode pass: decode starts with its n_ctx tokens cached"),
    ({"phase": "extend", "n_new": 16, "n_cached": 0},
     "line 3: n_cached 0 in an extend pass: extend starts with its n_ctx tokens cached"),
    ({"phase": "prefill", "n_new": 100}, "line 3: n_cached 100 in a prefill pass: prefill starts with 0 tokens cached"),
    ({"n_cached": -1}, "line 3: n_cached -1 is less than 0"),
    ({"n_cached": None}, "line 3: n_cached is missing"),
    ({"kv_cache_bytes": "x" * 100}, "line 3: kv_cache_bytes 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... is not a number"),
])
def test_a_bad_cell_is_named_by_line_and_column(tmp_path, change, message):
    with SampleWriter(tmp_path / "s.csv") as writer:
        writer.write(ROW)
        writer.write(ROW | {"repeat": 1} | change)
    with pytest.raises(UserError) as caught:
        read_samples(tmp_path / "s.csv")
    assert str(caught.value) == f"{tmp_path / 's.csv'}: {message}"


def test_the_rows_a_file_may_hold_are_bounded_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr("profiler.measure.samples.MAX_ROWS", 3)
    with SampleWriter(tmp_path / "s.csv") as writer:
        for repeat in range(3):
            writer.write(ROW | {"repeat": repeat})
    assert len(read_samples(tmp_path / "s.csv")) == 3
    with SampleWriter(tmp_path / "s.csv") as writer:
        for repeat in range(4):
            writer.write(ROW | {"repeat": repeat})
    with pytest.raises(UserError, match="more than 3 rows"):
        read_samples(tmp_path / "s.csv")


def test_a_file_written_before_batches_reads_as_passes_of_one_sequence(tmp_path):
    columns = [c for c in COLUMNS if c != "batch"]
    with (tmp_path / "s.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for repeat in range(2):
            writer.writerow({c: ("" if ROW[c] is None else ROW[c]) for c in columns} | {"repeat": repeat})
    frame = read_samples(tmp_path / "s.csv")
    assert list(frame.columns) == list(COLUMNS)  # batch right after phase
    assert frame["batch"].tolist() == [1, 1] and frame["batch"].dtype == "int64"


def test_a_file_written_before_extend_passes_derives_its_cached_tokens(tmp_path):
    columns = [c for c in COLUMNS if c != "n_cached"]
    with (tmp_path / "s.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for phase, n_new in (("decode", 1), ("prefill", 100), ("forward", 100), ("generate", 16)):
            writer.writerow({c: ("" if ROW[c] is None else ROW[c]) for c in columns} | {"phase": phase, "n_new": n_new})
    frame = read_samples(tmp_path / "s.csv")
    assert list(frame.columns) == list(COLUMNS)  # n_cached right after n_ctx
    assert frame["n_cached"].tolist() == [100, 0, 0, 0] and frame["n_cached"].dtype == "int64"


def test_a_row_written_without_its_cached_tokens_gets_them_from_its_phase(tmp_path):
    row = {key: value for key, value in ROW.items() if key != "n_cached"}
    with SampleWriter(tmp_path / "s.csv") as writer:
        writer.write(row)
        writer.write(row | {"phase": "prefill", "n_new": 100})
    assert read_samples(tmp_path / "s.csv")["n_cached"].tolist() == [100, 0]


def test_batches_of_prefill_and_decode_read_back_as_whole_numbers(tmp_path):
    with SampleWriter(tmp_path / "s.csv") as writer:
        writer.write(ROW)
        writer.write(ROW | {"batch": 8, "flops": 8 * ROW["flops"]})
        writer.write(ROW | {"phase": "prefill", "batch": 4, "n_new": 100, "n_cached": 0})
    frame = read_samples(tmp_path / "s.csv")
    assert frame["batch"].tolist() == [1, 8, 4] and frame["batch"].dtype == "int64"
