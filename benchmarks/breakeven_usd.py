"""A break-even in US dollars, from a published price sheet.

What: ``python -m profiler breakeven --unit usd`` (in-process, ``--json``) on the k-task exercise along
``k``, every role at one model's prices of the sheet (default ``models/price-sheets/anthropic-*.json``,
its ``Claude Haiku 3.5``): the generalist, ``k`` times a specialist's size, pays ``k`` times those prices
(the paper's linearity in ``m``); a 2,000-token system prompt on every call and 16 inputs served at once
(``--set system_prompt=2000 --set load=16``), without prefix reuse (every prompt token at the input
price) and with it (``--prefix-cache on``: the tokens a provider finds in its prompt cache at the
cached-input price). Prints the sheet's source and the day it was read, the exercise, each break-even
and both variants' dollars at ``k = 8``; the last line is one JSON document.

Why: the issue's figure, a break-even computed in dollars from a published price sheet, source and date
stated. Nothing is measured: the numbers follow from the sheet and the exercise's programs.

Usage: ``python benchmarks/breakeven_usd.py [SHEET] [MODEL]``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

from profiler.cli.main import main as profiler
from profiler.lba.price_sheet import read_price_sheet

SHEETS = Path(__file__).resolve().parents[1] / "models" / "price-sheets"  # wherever the script is run from

SETTINGS = ["--set", "system_prompt=2000", "--set", "load=16"]
VALUES = "1:16"
AT_K = 8.0


def breakeven(sheet: Path, model: str, prefix_cache: str) -> dict:
    printed = io.StringIO()
    argv = ["breakeven", "--exercise", "ktask", "--values", VALUES, *SETTINGS, "--unit", "usd", "--price-sheet",
            str(sheet), "--price-model", model, "--prefix-cache", prefix_cache, "--json"]
    with contextlib.redirect_stdout(printed):
        status = profiler(argv)
    if status != 0:
        raise SystemExit(f"breakeven ended with {status}")
    return json.loads(printed.getvalue())


def main() -> int:
    sheet_path = Path(sys.argv[1]) if len(sys.argv) > 1 else max(SHEETS.glob("anthropic-*.json"))
    model = sys.argv[2] if len(sys.argv) > 2 else "Claude Haiku 3.5"
    sheet = read_price_sheet(sheet_path)
    prices = sheet.models[model]
    print(f"price sheet: {sheet_path} -- {sheet.source}, read on {sheet.read_on.isoformat()}")
    print(f"{model}: ${prices.input_usd_per_mtok:g} input, ${prices.cached_input_usd_per_mtok:g} cached input, "
          f"${prices.output_usd_per_mtok:g} output per million tokens")
    print(f"exercise: k-task routing along k = {VALUES}, {' '.join(SETTINGS[1::2])}, every role at {model}'s prices "
          "(the generalist, k specialists' size, at k times them)")
    print(f"{'prefix reuse':<13} {'break-even k':>13} {'optimistic at k=8':>18} {'optimized at k=8':>17} {'ratio':>6}")
    results = []
    for prefix_cache in ("off", "on"):
        document = breakeven(sheet_path, model, prefix_cache)
        (row,) = [row for row in document["rows"] if row["value"] == AT_K]
        found = document["breakeven"]
        print(f"{prefix_cache:<13} {'none' if found is None else f'{found:.3g}':>13} "
              f"{'$' + format(row['optimistic'], '.4g'):>18} {'$' + format(row['optimized'], '.4g'):>17} "
              f"{row['ratio']:>6.3g}")
        results.append({"prefix_cache": prefix_cache, "unit": document["unit"], "breakeven_k": found,
                        "optimistic_usd_at_k8": row["optimistic"], "optimized_usd_at_k8": row["optimized"],
                        "ratio_at_k8": row["ratio"], "winner_throughout": document["winner_throughout"]})
    print(json.dumps({"sheet": str(sheet_path), "source": sheet.source, "read_on": sheet.read_on.isoformat(),
                      "model": model, "exercise": "ktask", "settings": SETTINGS[1::2], "values": VALUES,
                      "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
