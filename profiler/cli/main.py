"""Command line: ``python -m profiler run|fit|show|models|breakeven|validate|report|compare|export``.

A user's mistake (unknown model, malformed lengths, unwritable folder...) ends with one
line on stderr and exit status 2, never a traceback; Ctrl-C ends with exit status 130 and
SIGTERM with 143 (128 + the signal, as a shell reports it), both after what was measured is written.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time

from profiler.cli.parser import build_parser
from profiler.errors import UserError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _quiet_transformers() -> None:
    """Only the commands that build models import transformers; its advisories are not ours to show."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


# run's options that measure a local model, and their defaults: an endpoint run refuses them
_LOCAL_ONLY = {"device": "auto", "dtype": "auto", "attn": None, "device_map": None, "trust_remote_code": False,
               "threads": None, "batch": None}
_ENDPOINT_ONLY = ("api_key_env", "concurrency", "config", "in_process")


def _run(args, console, started_s: float) -> int:
    if args.endpoint is not None:
        return _run_endpoint(args, console)
    given = [name for name in _ENDPOINT_ONLY if getattr(args, name) is not None]
    if given:
        raise UserError(f"--{given[0].replace('_', '-')} is for --endpoint runs")
    _quiet_transformers()
    from profiler.cli.run import RunRequest, run

    request = RunRequest(
        models=args.model, device=args.device, dtype=args.dtype, lengths=args.lengths, budget_s=args.budget,
        out=args.out, attn_implementation=args.attn, device_map=args.device_map,
        trust_remote_code=args.trust_remote_code, threads=args.threads, seed=args.seed, fits=args.fits,
        batch_sizes=args.batch,
    )
    return run(request, console, started_s)


def _run_endpoint(args, console) -> int:
    given = [name for name, default in _LOCAL_ONLY.items() if getattr(args, name) != default]
    if given:
        raise UserError(f"--{given[0].replace('_', '-')} measures a local model; --endpoint measures a server")
    if len(args.model) > 1:
        raise UserError("--endpoint takes one --model: the served model's name")
    _quiet_transformers()
    from profiler.cli.run_endpoint import EndpointRequest, run_endpoint

    request = EndpointRequest(
        url=args.endpoint, model=args.model[0], api_key_env=args.api_key_env, config=args.config,
        lengths=args.lengths, budget_s=args.budget or EndpointRequest.budget_s,
        concurrency=tuple(args.concurrency or (1, 2, 4, 8)),
        out=args.out, fits=args.fits, seed=args.seed, in_process=args.in_process,
    )
    return run_endpoint(request, console)


def _fit(args, console) -> int:
    from profiler.cli.fit import run_fit

    return run_fit(args, console)


def _show(args, console) -> int:
    from profiler.costmodel.fit_file import load_cost_model
    from profiler.cli.show import print_cost_model

    print_cost_model(console, load_cost_model(args.fit), str(args.fit))
    return 0


def _report(args, console) -> int:
    from profiler.files import hold_run_folder
    from profiler.report import write_report

    if not args.folder.is_dir():  # write_report says what is wrong; holding the folder would make it
        write_report(args.folder, args.fits, in_process=args.in_process)
    with hold_run_folder(args.folder):  # a run writing into it meanwhile would change what is rendered
        written = write_report(args.folder, args.fits, in_process=args.in_process)
    console.print(f"wrote {written.markdown} and {written.html} ({len(written.figures)} figures) "
                  f"in {written.render_s:.1f} s")
    return 0


def _compare(args, console) -> int:
    from profiler.report import write_comparison

    written = write_comparison(*args.fits, out=args.out)
    console.print(f"wrote {written.markdown} and {written.html} ({len(written.figures)} figures) "
                  f"in {written.render_s:.1f} s")
    return 0


def _models(args, console) -> int:
    _quiet_transformers()
    from profiler.cli.models import print_inventory

    print_inventory(console)
    return 0


def _breakeven(args, console) -> int:
    from profiler.cli.breakeven import run_breakeven

    return run_breakeven(args, console)


def _export(args, console) -> int:
    from profiler.cli.export import run_export

    return run_export(args, console)


def _validate(args, console) -> int:
    _quiet_transformers()
    from profiler.cli.validate import run_validate

    return run_validate(args, console)


def main(argv: list[str] | None = None) -> int:
    started_s = time.perf_counter()  # a default run's minute counts from here (0.1 s after the interpreter starts)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 150)  # piped: no wrapping at 80 columns
    terminated = []

    def on_sigterm(signum, frame):
        # raised as Ctrl-C is, so each command's handling of an interrupt writes what it measured
        terminated.append(signum)
        raise KeyboardInterrupt

    earlier_sigterm = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        args = build_parser().parse_args(argv)
        commands = {"run": lambda args, console: _run(args, console, started_s), "models": _models, "fit": _fit,
                    "show": _show, "breakeven": _breakeven, "validate": _validate, "report": _report,
                    "compare": _compare, "export": _export}
        return commands[args.command](args, console)
    except UserError as err:
        print(f"profiler: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("profiler: terminated" if terminated else "profiler: interrupted", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, earlier_sigterm)  # main() called in-process leaves no handler behind


def run_and_exit() -> None:
    """The process's entry (``python -m profiler``, the ``aalp-profiler`` script): ``main``, then exit with its status.

    The objects torch and transformers made are frozen first, so the interpreter's exit does not walk them in its
    last garbage collections: 0.3 s instead of 2.3 s on the project's 2-core VM, part of a default run's minute.
    Files are closed by then (each is written in a ``with``); exit handlers still run."""
    status = main()
    gc.freeze()
    sys.exit(status)
