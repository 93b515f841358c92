"""The command line's grammar: ``build_parser()``, every command with its options, defaults and help text.

It only parses. A mistake in the arguments raises ``UserError`` (``profiler.cli.main`` prints it in one line
with exit status 2); each option's number is checked by its ``type=`` callable (``profiler.cli.arguments``).
Nothing here imports torch or the pricing code: the exercises' parameters are read only when
``breakeven --help`` or ``validate --help`` is shown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from profiler.cli.arguments import (
    MAX_BATCH,
    MAX_DEVICES,
    batch_sizes,
    budget_seconds,
    concurrency_levels,
    count,
    prefix_cache_arguments,
    seed,
    thread_count,
    tokens,
    usd_arguments,
    usd_per_device_hour,
)
from profiler.errors import UserError

# Seeds of the programs' oracle draws. Monte-Carlo spreads settle well before 10,000 runs (and each variant's
# calls in all are bounded apart: monte_carlo.MONTE_CARLO_CALLS); validate measures every seed with real calls.
MAX_MONTE_CARLO_SEEDS = 10_000
MAX_VALIDATE_SEEDS = 1_000


class _Parser(argparse.ArgumentParser):
    """Mistakes end as a UserError; ``epilog_of`` (a callable) writes the epilog only when help is shown."""

    def __init__(self, *args, epilog_of=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._epilog_of = epilog_of

    def format_help(self) -> str:
        if self._epilog_of is not None:
            self.epilog = self._epilog_of()
        return super().format_help()

    def error(self, message: str):
        raise UserError(message)


def _exercise_parameters() -> str:
    # the exercises' parameters need the pricing code: imported for --help, not for every command
    from profiler.cli.breakeven import parameters_help

    return parameters_help()


def build_parser() -> argparse.ArgumentParser:
    """``python -m profiler`` and its commands; ``parse_args`` raises ``UserError`` on a mistake."""
    parser = _Parser(prog="python -m profiler", description="Measure what an LLM forward pass really costs.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="measure prefill, decode, forward and generate across context lengths")
    run.add_argument("--model", action="append", required=True,
                     help="a name under models/, a local folder (HF layout) or a cached hub id; repeatable")
    run.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    run.add_argument("--dtype", default="auto",
                     help="auto (float32 on CPU, bfloat16 on GPU), float32, bfloat16 or float16")
    run.add_argument("--lengths", help="context lengths: a list 16,64,256 or a range 64:8192 "
                                       "(default: 8 to the model's maximum, trimmed to the budget)")
    run.add_argument("--budget", type=budget_seconds, metavar="SECONDS",
                     help="time budget of each model's sweep (default: what is left of a minute per model after "
                          "start-up and build, less 10 s kept for the fit and report; an endpoint run: 45; "
                          "at most a week)")
    run.add_argument("--out", type=Path, default=Path("reports"), help="output root (default reports/)")
    run.add_argument("--attn", choices=["sdpa", "eager"],
                     help="attention implementation (default: sdpa, or eager where the architecture cannot run sdpa)")
    run.add_argument("--device-map", choices=["auto"], help="spread a model too large for one device (accelerate)")
    run.add_argument("--trust-remote-code", action="store_true", help="allow a model's own Python code to run")
    run.add_argument("--threads", type=thread_count,
                     help="torch CPU threads, 1 to the CPUs this process may use (default: torch's choice, recorded)")
    run.add_argument("--batch", type=batch_sizes, metavar="SIZES",
                     help="batch sizes of the batch grid, e.g. 1,2,4,8 (default 1,2,4,8 on a CPU, 1 to 64 on a GPU; "
                          "1 alone: none); each 1 to 4,096, at most 16")
    run.add_argument("--seed", type=seed, default=0,
                     help="seed of prompt tokens, random weights and point order (0 to 2^32-1)")
    run.add_argument("--fits", type=Path, default=Path("fits"), help="where fitted cost models go (default fits/)")
    run.add_argument("--endpoint", metavar="URL",
                     help="profile a served model through its OpenAI-compatible API at URL (e.g. http://host:8000/v1); "
                          "--model is then the served model's name")
    run.add_argument("--api-key-env", metavar="VAR", help="with --endpoint: the environment variable holding the key")
    run.add_argument("--concurrency", type=concurrency_levels, metavar="LEVELS",
                     help="with --endpoint: calls at once in the concurrency sweep, e.g. 1,2,4,8 (the default); "
                          "each 1 to 64")
    run.add_argument("--config", metavar="NAME",
                     help="with --endpoint: a local model (as --model takes one) whose config gives the served "
                          "model's numbers and FLOPs (default: the served name, where it is one)")
    run.add_argument("--in-process", type=Path, metavar="FIT",
                     help="with --endpoint: the fit of the same model run in process on the server's machine; the "
                          "report shows the serving overhead against it")

    fit = commands.add_parser("fit", help="fit cost curves to saved samples and write fits/<model>--<hw>.json")
    fit.add_argument("samples", nargs="+", type=Path, help="samples.csv of a run (with its run.json, hardware.json)")
    fit.add_argument("--fits", type=Path, default=Path("fits"), help="where fitted cost models go (default fits/)")

    show = commands.add_parser("show", help="print a fitted cost model as tables")
    show.add_argument("fit", type=Path, help="a fits/<model>--<hw>.json file")

    commands.add_parser("models", help="list the models that can be profiled offline, with their sizes")

    report = commands.add_parser("report", help="re-render a run's report (report.md, report.html, figures) from "
                                                "its saved samples and fit, without measuring")
    report.add_argument("folder", type=Path, help="a run's folder, reports/<hardware-slug>/<model>")
    report.add_argument("--fits", type=Path, default=Path("fits"), help="where its fit is (default fits/)")
    report.add_argument("--in-process", type=Path, metavar="FIT",
                        help="an endpoint run's: the fit of the same model run in process on the server's machine "
                             "(the serving overhead is shown against it)")

    compare = commands.add_parser("compare", help="two fitted cost models side by side: figures and a table of ratios")
    compare.add_argument("fits", nargs=2, type=Path, metavar="FIT", help="fits/<model>--<hw>.json files")
    compare.add_argument("--out", type=Path, help="output folder (default reports/compare/<first>--vs--<second>/)")

    breakeven = commands.add_parser(
        "breakeven", help="price the paper's three exercises and find where each decomposition breaks even",
        epilog_of=_exercise_parameters, formatter_class=argparse.RawDescriptionHelpFormatter)
    breakeven.add_argument("--exercise", default="all", help="ktask, debugging, evolution or all (default all)")
    breakeven.add_argument("--primitive", choices=["paper"], help="price by the paper's m*n primitive (the default)")
    breakeven.add_argument("--fit", type=Path, action="append", default=[],
                           help="price by a fitted cost model (fits/<model>--<hw>.json); several of one family "
                                "give the size law")
    breakeven.add_argument("--role", action="append", default=[], metavar="ROLE=FIT",
                           help="a role's own cost model, e.g. generalist=fits/gpt2-xl--<hw>.json")
    breakeven.add_argument("--no-cache", action="store_true", help="fitted costs without a KV cache")
    breakeven.add_argument("--metric", default="latency_s", choices=["latency_s", "flops", "energy_j"],
                           help="what to price (energy_j: joules, from a fit whose run read an energy counter)")
    breakeven.add_argument("--vary", help="the parameter along which to look (default: the exercise's k)")
    breakeven.add_argument("--values", help="its grid: a list 2,4,8 or a range 1:12")
    breakeven.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="fix a parameter")
    breakeven.add_argument("--monte-carlo", type=count(0, MAX_MONTE_CARLO_SEEDS), default=0, metavar="SEEDS",
                           help="also run the programs with SEEDS seeded oracle draws: the spread of the cost "
                                f"(at most {MAX_MONTE_CARLO_SEEDS:,})")
    _schedule_arguments(breakeven, "priced in device time and in makespan")
    prefix_cache_arguments(breakeven, "the programs' calls replayed one after another through that cache")
    usd_arguments(breakeven)
    breakeven.add_argument("--json", action="store_true", help="print one JSON document instead of tables")

    export = commands.add_parser("export", help="a fitted cost model for other tools: a per-call cost table (CSV) "
                                                "and a LiteLLM custom-pricing entry")
    export.add_argument("fit", type=Path, help="a fits/<model>--<hw>.json file")
    export.add_argument("--out", type=Path, required=True, help="the folder the two files go to (made if missing)")
    export.add_argument("--usd-per-device-hour", type=usd_per_device_hour, metavar="X",
                        help="US dollars a device-hour: adds USD to the table and writes the LiteLLM entry")
    export.add_argument("--typical-input", type=tokens, metavar="N",
                        help="with a rate: the input tokens of the typical call the LiteLLM prices are set at "
                             "(default: a power of two, half the longest prefill measured)")
    export.add_argument("--typical-output", type=tokens, metavar="N",
                        help="with a rate: its output tokens (default: a power of two, a quarter of what the "
                             "decode steps measured beyond the input)")

    validate = commands.add_parser(
        "validate", help="run the three exercises with real model calls; measured against predicted cost",
        epilog_of=_exercise_parameters, formatter_class=argparse.RawDescriptionHelpFormatter)
    validate.add_argument("--model", required=True, help="the model that runs every call (as for run)")
    validate.add_argument("--exercise", default="all", help="ktask, debugging, evolution or all (default all)")
    validate.add_argument("--vary", help="the parameter along which to look (default: each exercise's own)")
    validate.add_argument("--values", help="its grid: a list 2,4,8 or a range 1:4")
    validate.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="fix a parameter")
    validate.add_argument("--budget", type=budget_seconds, default=300.0, metavar="SECONDS",
                          help="time for the measured runs of all exercises (default 300; at most a week)")
    validate.add_argument("--seeds", type=count(1, MAX_VALIDATE_SEEDS), default=5,
                          help=f"runs per value of a stochastic exercise (default 5; at most {MAX_VALIDATE_SEEDS:,})")
    validate.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    validate.add_argument("--threads", type=thread_count,
                          help="torch CPU threads, 1 to the CPUs this process may use (default: torch's choice; "
                               "part of the hardware slug, so the fit must use the same)")
    validate.add_argument("--fits", type=Path, default=Path("fits"),
                          help="where fitted cost models are (default fits/)")
    validate.add_argument("--out", type=Path, default=Path("reports"), help="output root (default reports/)")
    validate.add_argument("--endpoint", metavar="URL",
                          help="run every call on a served model through its OpenAI-compatible API at URL, measured "
                               "against the fit of `run --endpoint`; --model is then the served model's name")
    validate.add_argument("--api-key-env", metavar="VAR",
                          help="with --endpoint: the environment variable holding the key")
    validate.add_argument("--config", metavar="NAME",
                          help="with --endpoint: the local config the endpoint run used (default: the served name, "
                               "where it is one)")
    _schedule_arguments(validate, "run as batched generates on this device, measured against the makespan")
    prefix_cache_arguments(validate, "run for real: each model keeps its calls' KV caches, measured against the "
                                     "calls replayed through that cache")
    validate.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    return parser


def _schedule_arguments(parser: argparse.ArgumentParser, parallel: str) -> None:
    """``--schedule``, ``--max-batch`` and ``--devices``, as breakeven and validate take them (checked together
    by ``cli.breakeven.schedule_of``); ``parallel`` says what the command does with a parallel schedule."""
    parser.add_argument("--schedule", choices=["sequential", "parallel"], default="sequential",
                        help="sequential: every call alone, one after another (the paper's sum, the default); "
                             f"parallel: each group of independent calls batched and spread over devices, {parallel}")
    parser.add_argument("--max-batch", type=count(1, MAX_BATCH), metavar="N",
                        help="parallel: at most N calls a batch (default: the largest batch the fit measured; "
                             "unlimited for the paper's primitive)")
    parser.add_argument("--devices", type=count(1, MAX_DEVICES), metavar="D",
                        help="parallel: D devices, each running one batch at a time (default 1)")
