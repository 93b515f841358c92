"""How close the fitted cost model's predictions come to real runs of the paper's three exercises.

What: ``python -m profiler validate --model gpt2 --exercise all --json`` with its default grids
(``profiler.cli.validate.VALIDATE_GRIDS``): each exercise's optimistic and optimized
program run with real gpt2 calls (random weights, forced output lengths; every role by gpt2),
the wall time of each run against the prediction of gpt2's fit on this machine (profiled
first when there is none). Extra arguments go to the command (e.g. ``--threads 1`` on a
shared machine: the fit must use the same thread count, which is part of the hardware slug;
``--schedule parallel``: each group of independent calls run as batched generates of at most
``--max-batch`` calls, the fit's largest measured batch by default, against the predicted
makespan, with the default grids serving 4 inputs in k-task and 4 mutants in evolution).

Why: a break-even is only as good as the per-call costs behind it; this is the check.

Columns: predicted cost (for evolution, the predicted 5-95% interval of the mean over seeds), measured
(``~``: the machine ran more than 10% off its profiled speed around the run), ``err`` = predicted /
measured - 1, ``calls`` = the same for the calls the runs actually made (for evolution, the cost
model's error without the draws' luck; a mean outside its interval whose calls are priced within 10% is counted
as outside by the draws alone, and printed with the percentile of the simulated means that its runs' prices lie
at), ``gen`` = that price over the summed time of the generates alone (the fit's error on the passes, without
the program's Python between them: where ``calls`` misses and ``gen`` does not, the time is lost in execution,
not in the fit), ``B`` the calls per generate (1 in sequence), and the ratio optimistic / optimized.

Targets (from the issue): at each grid value, predicted total cost within 10% of measured
(deterministic exercises; for evolution, the measured mean over seeds inside the predicted
5-95% interval of the mean), and the predicted break-even within one grid step of the measured.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys

from profiler.cli.main import main as profiler_main
from profiler.lba.validation_document import ValidationDocument
from profiler.lba.validation_verdict import outside_by_the_draws, steady


def _ms(value) -> str:  # milliseconds
    return "-" if value is None else f"{value * 1e3:.0f}"


def _pct(value) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _generates_error(runs) -> float | None:
    """Mean over ``runs`` of their predicted cost over the summed time of their generates, minus 1."""
    return sum(run.predicted_s / run.calls_latency_s - 1 for run in runs) / len(runs) if runs else None


def _calls_a_generate(runs) -> str:
    generates = sum(run.generates or run.calls for run in runs)
    return "-" if not generates else f"{sum(run.calls for run in runs) / generates:.1f}"


def main() -> int:
    buffer = io.StringIO()
    load_start = os.getloadavg()[0]
    with contextlib.redirect_stdout(buffer):
        status = profiler_main(["validate", "--model", "gpt2", "--exercise", "all", "--json", *sys.argv[1:]])
    if status != 0:
        return status
    documents = json.loads(buffer.getvalue())["exercises"]
    typed = [ValidationDocument.from_json(document) for document in documents]
    print(f"schedule: {typed[0].schedule or 'sequential'}; load average {load_start:.2f} at the start")
    print(f"{'exercise':<10} {'value':>6} | {'optimistic: predicted':>21} {'measured':>9} {'err':>7} {'calls':>7} "
          f"{'gen':>7} {'B':>4} | {'optimized: predicted':>20} {'measured':>9} {'err':>7} {'calls':>7} {'gen':>7} "
          f"{'B':>4} | {'ratio pred':>10} {'meas':>6}")
    summary = []
    for document, validation in zip(documents, typed):
        for row in validation.rows:
            cells = []
            for variant in ("optimistic", "optimized"):
                predicted = _ms(row.cost[variant])
                if row.predicted_interval is not None:
                    lo, hi = row.predicted_interval[variant]
                    predicted = f"{_ms(lo)}-{_ms(hi)}"
                runs = row.runs[variant]
                mark = "" if all(steady(run) for run in runs) else "~"
                cells.append(f"{predicted:>20} {_ms(row.measured[variant]) + mark:>9} "
                             f"{_pct(row.error[variant]):>7} {_pct(row.error_given_calls[variant]):>7} "
                             f"{_pct(_generates_error(runs)):>7} {_calls_a_generate(runs):>4}")
            print(f"{validation.exercise:<10} {row.value:>6g} | {cells[0]} | {cells[1]} | {row.ratio:>10.3g} "
                  f"{row.measured_ratio or float('nan'):>6.3g}")
        targets = document["targets"]
        print(f"{document['exercise']}: costs on target {targets['costs_met']}/{targets['costs_checked']} "
              f"(unsteady, left out: {targets['costs_unsteady']}; outside by the draws alone: "
              f"{len(outside_by_the_draws(validation))}); break-even "
              f"predicted {document['breakeven'] or document['winner_throughout']}, measured "
              f"{document['measured_breakeven'] or document['measured_winner_throughout']}: "
              f"within one step {targets['breakeven']}; skipped {len(document['skipped'])}")
        for value, variant, quantile in outside_by_the_draws(validation):
            where = "-" if quantile is None else f"{100 * quantile:.1f}"
            print(f"  {validation.vary}={value:g} {variant}: its seeds' runs, priced as made, at percentile {where} of "
                  "the simulated means")
        summary.append({"exercise": document["exercise"], "vary": document["vary"], "params": document["params"],
                        "schedule": document.get("schedule"),
                        "targets": targets, "breakeven": document["breakeven"],
                        "measured_breakeven": document["measured_breakeven"],
                        "winner_throughout": document["winner_throughout"],
                        "measured_winner_throughout": document["measured_winner_throughout"],
                        "rows": [{key: row[key] for key in ("value", "optimistic", "measured_optimistic",
                                                            "error_optimistic", "optimized", "measured_optimized",
                                                            "error_optimized", "error_given_calls_optimistic",
                                                            "error_given_calls_optimized", "ratio", "measured_ratio")}
                                 | {f"error_generates_{variant}": _generates_error(typed_row.runs[variant])
                                    for variant in ("optimistic", "optimized")}
                                 | {f"draw_quantile_{variant}": typed_row.draw_quantile[variant]
                                    for variant in ("optimistic", "optimized")}
                                 for row, typed_row in zip(document["rows"], validation.rows)],
                        "skipped": document["skipped"]})
    met = all(d["targets"]["costs"] and d["targets"]["breakeven"] for d in summary)
    print(json.dumps({"benchmark": "validate_gpt2", "load_average_start": load_start,
                      "load_average_end": os.getloadavg()[0], "exercises": summary, "met": met}))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
