"""``python -m profiler export FIT --out DIR``: a fitted cost model in forms other tools read.

Writes, into ``--out`` only (made if missing; each file written whole, then renamed into place):

- ``<model>--<hw>.cost-table.csv``: a row a call over a grid of input and output lengths inside what
  the fit measured (``profiler.report.cost_table``): seconds with their 95% interval, FLOPs and, with
  ``--usd-per-device-hour X``, US dollars;
- with ``--usd-per-device-hour X``, ``<model>--<hw>.litellm.json``: a LiteLLM custom-pricing entry
  (``profiler.report.litellm_entry``), per-token prices set at a typical call of ``--typical-input`` and
  ``--typical-output`` tokens, the assumptions written beside them. Without a rate there are no dollars
  to set, so no entry (the output says so) and the typical lengths are refused.

The names are the fit's (``profiler.files.fit_path``: with its dtype where that is not its device's
default). The typical call must lie inside what the fit measured -- its input within the prefill curve's
lengths, its decode steps within the decode curve's contexts, all within the model's positions -- or it is
refused in one line: a price set on an extrapolation would be passed on to every call LiteLLM prices.
Defaults: the input a power of two, half the longest prefill measured; the output a power of two, a
quarter of what the decode curve measured beyond that input.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.fit_file import load_cost_model
from profiler.errors import UserError
from profiler.files import fit_path, write_json, write_text
from profiler.report.cost_table import cost_table, longest_output, table_csv
from profiler.report.litellm_entry import litellm_entry


def _power_of_two_at_most(value: float) -> int:
    return 1 << (max(int(value), 1).bit_length() - 1)


def typical_call(cost_model: CostModel, n_in: int | None, n_out: int | None) -> tuple[int, int]:
    """The typical call of ``--typical-input`` and ``--typical-output`` (their defaults where not given: see the
    module doc); a one-line UserError when it leaves what the fit measured."""
    prefill = cost_model.curve("prefill", "latency_s")
    if n_in is None:
        n_in = max(_power_of_two_at_most(prefill.n_max / 2), prefill.n_min)
    if not prefill.n_min <= n_in <= prefill.n_max:
        raise UserError(f"--typical-input {n_in:,}: the fit measured prefills of {prefill.n_min:,} to "
                        f"{prefill.n_max:,} tokens; give a length inside them")
    longest = longest_output(cost_model, n_in)
    if n_out is None:
        decode = cost_model.curve("decode", "latency_s")
        n_out = max(_power_of_two_at_most((decode.n_max - n_in + 2) / 4), 1) if n_in >= decode.n_min else 1
    if n_out > longest:
        raise UserError(f"--typical-output {n_out:,}: after {n_in:,} input tokens the fit measured decode steps "
                        f"(and the model has positions) for at most {longest:,} output tokens; give fewer")
    return n_in, n_out


def run_export(args, console: Console) -> int:
    """Everything computed and checked before the first file is written."""
    if args.usd_per_device_hour is None and (args.typical_input is not None or args.typical_output is not None):
        raise UserError("--typical-input and --typical-output set the LiteLLM entry's prices, which need "
                        "--usd-per-device-hour")
    cost_model = load_cost_model(args.fit)
    stem = fit_path(Path(), cost_model.model.name, cost_model.hardware_slug, cost_model.model.dtype,
                    cost_model.hardware.get("device")).stem
    columns, rows = cost_table(cost_model, args.usd_per_device_hour)
    entry = None
    if args.usd_per_device_hour is not None:
        n_in, n_out = typical_call(cost_model, args.typical_input, args.typical_output)
        entry = litellm_entry(cost_model, stem, args.usd_per_device_hour, n_in, n_out)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot write to {out}: {err.strerror or err}") from None
    table_path = out / f"{stem}.cost-table.csv"
    write_text(table_path, table_csv(columns, rows))
    # soft_wrap: a line naming a file is never broken inside it, however long the path (it can be copied)
    console.print(f"wrote {table_path}: {len(rows):,} calls ({', '.join(columns)})", soft_wrap=True)
    if entry is None:
        console.print("no LiteLLM entry: its per-token prices need a rate (--usd-per-device-hour)")
        return 0
    entry_path = out / f"{stem}.litellm.json"
    write_json(entry_path, entry)
    prices = entry[stem]
    per_million = ", ".join(f"{key} ${prices[key] * 1e6:.4g}/M" for key in
                            ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost")
                            if key in prices)
    console.print(f"wrote {entry_path}: {per_million} (at {n_in:,} in, {n_out:,} out)", soft_wrap=True)
    return 0
