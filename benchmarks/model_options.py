"""The options of the benchmarks that build one model (``--model``, ``--device``, ``--dtype``, ``--threads``), resolved
in one place, and the facts each prints of them.

``add_model_options(parser, model)`` adds the four (``model``: the default); ``resolve_model_options(args)`` checks
them, a ``UserError`` for a model, device or dtype that is not there (as ``run`` says it), and sets the torch threads
asked; ``described`` and ``loads`` are what each script's first line says, ``facts`` the fields of its JSON document.

A helper module of the scripts in ``benchmarks/`` (each runs with this folder first on its path).
"""

from __future__ import annotations

import argparse
import os

import torch

from profiler.cli.arguments import thread_count
from profiler.measure.catalog import ModelSource, resolve_model
from profiler.measure.devices import dtype_name, resolve_device, resolve_dtype


def add_model_options(parser: argparse.ArgumentParser, model: str = "gpt2") -> None:
    parser.add_argument("--model", default=model)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=thread_count, help="torch CPU threads (default torch's choice)")


def resolve_model_options(args: argparse.Namespace) -> tuple[ModelSource, torch.device, torch.dtype]:
    """The model's source, the device and the dtype ``args`` name (``auto``: as ``run`` chooses); the torch threads
    set when asked."""
    source = resolve_model(args.model)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    if args.threads:
        torch.set_num_threads(args.threads)
    return source, device, dtype


def described(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> str:
    return f"{args.model}, random weights, {dtype_name(dtype)} on {device}, {torch.get_num_threads()} threads"


def facts(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict:
    return {"model": args.model, "device": str(device), "dtype": dtype_name(dtype),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__}


def loads(before: tuple[float, ...], after: tuple[float, ...]) -> str:
    """The load averages before and after the measurement (other processes on the cores move timings)."""
    return (f"load average (1, 5, 15 min) {'/'.join(f'{x:.2f}' for x in before)} before, "
            f"{'/'.join(f'{x:.2f}' for x in after)} after, {os.cpu_count()} CPUs")
