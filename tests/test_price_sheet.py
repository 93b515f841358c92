"""Price sheets: the published ones read, and every kind of bad sheet refused in one line (exit 2) by the command
that reads it."""

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from profiler.lba.price_sheet import MAX_SHEET_BYTES, read_price_sheet
from tests.user_error import user_error

SHEETS = Path(__file__).resolve().parents[1] / "models" / "price-sheets"
GOOD = {"format_version": 1, "source": "https://example.com/pricing", "read_on": "2026-01-15", "currency": "USD",
        "models": {"small": {"input_usd_per_mtok": 0.5, "cached_input_usd_per_mtok": 0.05, "output_usd_per_mtok": 2},
                   "large": {"input_usd_per_mtok": 4, "output_usd_per_mtok": 20}}}


def _written(tmp_path, document) -> Path:
    path = tmp_path / "sheet.json"
    if isinstance(document, bytes):
        path.write_bytes(document)
    else:
        path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_a_good_sheet_is_read_and_a_missing_cached_price_is_the_input_price(tmp_path):
    sheet = read_price_sheet(_written(tmp_path, GOOD))
    assert sheet.source == "https://example.com/pricing" and sheet.read_on == date(2026, 1, 15)
    assert sheet.host == "example.com" and sheet.note is None
    small, large = sheet.models["small"], sheet.models["large"]
    assert (small.input_usd_per_mtok, small.cached_input_usd_per_mtok, small.output_usd_per_mtok) == (0.5, 0.05, 2)
    assert small.cached_input_given and not large.cached_input_given
    assert large.cached_input_usd_per_mtok == large.input_usd_per_mtok == 4


def test_every_published_sheet_is_valid_and_says_where_and_when():
    sheets = sorted(SHEETS.glob("*.json"))
    assert sheets
    for path in sheets:
        sheet = read_price_sheet(path)
        assert sheet.source.startswith("https://") and sheet.read_on <= date.today() and sheet.note
        assert sheet.read_on.isoformat() in path.name  # a sheet is named by the day it was read
        assert all(m.cached_input_usd_per_mtok <= m.input_usd_per_mtok <= m.output_usd_per_mtok
                   for m in sheet.models.values())


def _models(**entry):
    return GOOD | {"models": {"m": entry}}


TOMORROW = (date.today() + timedelta(days=1)).isoformat()
BAD = [
    (_models(input_usd_per_mtok=1), "model 'm': no 'output_usd_per_mtok'"),
    (_models(input_usd_per_mtok=-1, output_usd_per_mtok=2), "input_usd_per_mtok -1: expected a finite number"),
    (_models(input_usd_per_mtok="1", output_usd_per_mtok=2), "input_usd_per_mtok '1': expected a finite number"),
    (_models(input_usd_per_mtok=True, output_usd_per_mtok=2), "input_usd_per_mtok True: expected a finite number"),
    (_models(input_usd_per_mtok=None, output_usd_per_mtok=2), "input_usd_per_mtok None: expected a finite number"),
    (json.dumps(_models(input_usd_per_mtok=1, output_usd_per_mtok=2)).replace("2}", "NaN}"),
     "NaN is no number a price sheet may hold"),
    (json.dumps(_models(input_usd_per_mtok=1, output_usd_per_mtok=2)).replace("2}", "-Infinity}"),
     "-Infinity is no number a price sheet may hold"),
    (json.dumps(_models(input_usd_per_mtok=1, output_usd_per_mtok=2)).replace("2}", "1e400}"),
     "output_usd_per_mtok inf: expected a finite number"),
    (_models(input_usd_per_mtok=1, output_usd_per_mtok=2, batch_usd_per_mtok=1), "unknown key 'batch_usd_per_mtok'"),
    (GOOD | {"discount": 0.5}, "unknown key 'discount' (a price sheet has"),
    ({k: v for k, v in GOOD.items() if k != "read_on"}, "no 'read_on'"),
    (GOOD | {"read_on": "2026/01/15"}, "read_on: expected the day the prices were read, YYYY-MM-DD"),
    (GOOD | {"read_on": "20260115"}, "read_on: expected the day the prices were read, YYYY-MM-DD"),
    (GOOD | {"read_on": "2026-02-30"}, "read_on 2026-02-30: no such day"),
    (GOOD | {"read_on": TOMORROW}, f"read_on {TOMORROW}: after today"),
    (GOOD | {"read_on": 20260115}, "read_on: expected the day"),
    (GOOD | {"models": {}}, "models: expected an object of at least one model's prices"),
    (GOOD | {"models": [["m", 1]]}, "models: expected an object"),
    (GOOD | {"models": {"a\tb": GOOD["models"]["small"]}}, "model name 'a\\tb': expected printable text"),
    (GOOD | {"models": {"": GOOD["models"]["small"]}}, "model name '': expected printable text"),
    (GOOD | {"models": {" m": GOOD["models"]["small"]}}, "no spaces at its ends"),
    (GOOD | {"models": {"m": [1, 2]}}, "model 'm': expected an object of input_usd_per_mtok"),
    (GOOD | {"currency": "EUR"}, "currency 'EUR': prices are read in USD only"),
    (GOOD | {"source": "ftp://example.com/p"}, "source 'ftp://example.com/p': expected an http or https address"),
    (GOOD | {"source": "see the website"}, "source: expected the web address"),
    (GOOD | {"format_version": 2}, "format_version 2: this code reads version 1"),
    (GOOD | {"note": "line\nbreak"}, "note: expected printable text"),
    ('{"source": "https://a.b", "source": "https://c.d"}', "the key 'source' is given twice"),
    ("{not json", "not a price sheet's JSON (Expecting property name"),
    ("[1, 2]", "not a JSON object, so no price sheet"),
    (b"\x80\x04\x95pickle", "not UTF-8 text, so no price sheet"),
    (b" " * (MAX_SHEET_BYTES + 1), f"more than {MAX_SHEET_BYTES:,} bytes, too large for a price sheet"),
]


@pytest.mark.parametrize("document, message", BAD)
def test_a_bad_sheet_is_one_line_and_exit_2(capfd, tmp_path, document, message):
    path = _written(tmp_path, document)
    line = user_error(capfd, ["breakeven", "--exercise", "ktask", "--unit", "usd", "--price-sheet", str(path)])
    assert f"{path}: " in line and message in line, line


@pytest.mark.parametrize("where, message", [("missing.json", "missing.json: not found"),
                                            (".", ": a folder, not a price sheet")])
def test_a_sheet_that_cannot_be_read_is_one_line_and_exit_2(capfd, where, message):
    line = user_error(capfd, ["breakeven", "--unit", "usd", "--price-sheet", where])
    assert message in line, line
