import csv

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


def test_read_back(tmp_path):
    with SampleWriter(tmp_path / "s.csv") as writer:
        writer.write({"phase": "decode", "n_ctx": 100, "n_new": 1, "latency_s": 0.03})
    frame = read_samples(tmp_path / "s.csv")
    assert list(frame.columns) == list(COLUMNS) and frame.loc[0, "n_ctx"] == 100
