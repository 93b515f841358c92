"""``python -m profiler validate --endpoint URL --model NAME``: the three exercises run against a served model, each
call a streamed completion (``profiler.lba.endpoint_backend``), measured against the endpoint's fit.

``--model`` is the served model's name; the run folder and fit are those of ``run --endpoint``
(``profiler.cli.run_endpoint``): ``<out>/<endpoint-slug>/<model>/`` and ``<fits>/<model>--<endpoint-slug>.json``,
``<model>`` the local config's name (``--config NAME``, else the served name where it resolves to one here), else
the served name made a folder name. Without that fit, the samples of an earlier endpoint run there are fitted, or
else the endpoint is profiled first (``run --endpoint`` with lengths from the shortest prompt the server can take
to its context less a call's output: the exercises' calls read as few as 1 token; its own time, outside
``--budget``). Profiling first needs the served context: the local config's (``--config NAME``, or the served name
where it resolves here). With a fit that does not say the context (a served model fitted from latency alone), calls
are bounded by what its run reached: its longest prompt and that call's output (``reached_positions``), beyond which
nothing is known to run.

Every call runs alone, one after another: ``--schedule parallel`` and ``--prefix-cache on`` are refused (an
endpoint's fit has no batch or extend surface, a client seeing neither the server's batches nor its cache; load is
what ``run --endpoint``'s concurrency sweep measures), as are ``--device`` and ``--threads`` (they place a local
model). The key is read from ``--api-key-env``'s variable when each request is sent; it is written nowhere.
"""

from __future__ import annotations

from rich.console import Console

from profiler.cli.validate import exercise_plans, run_plans
from profiler.costmodel.fit_file import load_cost_model
from profiler.errors import UserError
from profiler.files import fit_path, hold_run_folder, run_folder
from profiler.lba.endpoint_backend import endpoint_runner
from profiler.lba.schedule import SEQUENTIAL
from profiler.lba.validate import within_positions
from profiler.measure.catalog import ModelSource, resolve_model
from profiler.measure.endpoint.address import endpoint_slug, parse_endpoint
from profiler.measure.endpoint.client import EndpointClient
from profiler.measure.endpoint.prompts import PromptShape, calibrate
from profiler.measure.endpoint.sweep import N_OUT


def _refuse_local_options(args) -> None:
    """A one-line UserError for an option that has no meaning against a server (see the module doc)."""
    if args.device != "auto" or args.threads is not None:
        which = "--device" if args.device != "auto" else "--threads"
        raise UserError(f"{which} places a local model; with --endpoint every call runs on the server")
    if args.schedule == "parallel" or args.max_batch is not None or args.devices is not None:
        raise UserError("--endpoint runs every call alone: an endpoint's fit has no batch surface (a client cannot "
                        "see the server's batches); load is measured by `run --endpoint`'s concurrency sweep")
    if args.prefix_cache == "on" or args.cache_capacity is not None:
        raise UserError("--endpoint runs every call on fresh prompts: an endpoint's fit has no extend surface (a "
                        "client cannot see the server's cache); `run --endpoint`'s prefix probe shows whether it "
                        "caches")


def _local_config(args) -> ModelSource | None:
    """``--config``'s model (a mistake in it: one line), else the served name's where it resolves here, else
    None."""
    if args.config is not None:
        return resolve_model(args.config)
    try:
        return resolve_model(args.model)
    except UserError:
        return None


def run_validate_endpoint(args, console: Console) -> int:
    from profiler.cli.run_endpoint import folder_name

    _refuse_local_options(args)
    plans = exercise_plans(args, SEQUENTIAL)
    endpoint = parse_endpoint(args.endpoint, args.model, args.api_key_env)
    source = _local_config(args)
    name = source.name if source else folder_name(endpoint.model)
    slug = endpoint_slug(endpoint)
    fit = fit_path(args.fits, name, slug)
    quiet = Console(quiet=True) if args.json else console
    served_positions = None
    if source is not None:  # checked before any request: a grid beyond the model is one line now
        from profiler.measure.loading import meta_architecture

        served_positions = meta_architecture(source).max_positions
        for exercise, vary, values, params in plans:
            within_positions(exercise, vary, sorted(set(values)), params, served_positions - 1, name)
    elif not fit.is_file() and not (run_folder(args.out, slug, name) / "samples.csv").is_file():
        raise UserError(f"no fit {fit}, no earlier endpoint run, and no local config of {endpoint.model!r} to say its "
                        f"context: profile it first (python -m profiler run --endpoint {endpoint.url} --model "
                        f"{endpoint.model} --lengths 1:N, N its context less {N_OUT}) or give --config NAME")
    folder = run_folder(args.out, slug, name)
    with hold_run_folder(folder), EndpointClient(endpoint) as client:
        cost_model = load_cost_model(fit) if fit.is_file() else None
        if cost_model is None and served_positions is None:  # an earlier run's samples, fitted now
            cost_model = _fit_or_profile(args, folder, fit, 0, None, quiet)
        if cost_model is not None:
            served_positions = cost_model.model.max_positions or served_positions or reached_positions(cost_model)
        shape = calibrate(client)
        runner = endpoint_runner(client, shape, name, served_positions)
        if cost_model is None:
            cost_model = _fit_or_profile(args, folder, fit, served_positions, shape, quiet)
        quiet.print(f"{endpoint.model} at {endpoint.url} ({slug}), every call streamed, predictions from {fit}; "
                    f"budget {args.budget:g} s")
        status = run_plans(plans, runner, cost_model, fit, folder, SEQUENTIAL, args, console)
        if client.failures:
            quiet.print(f"[yellow]{len(client.failures)} failed attempts were retried: their waits are in the "
                        "measured wall times of the runs they fell in")
    return status


def reached_positions(cost_model) -> int:
    """The positions an endpoint run is known to have used: its longest prompt (the prefill curve's ``n_max``) and
    that call's ``N_OUT`` output tokens."""
    return cost_model.curve("prefill", "latency_s").n_max + N_OUT


def _fit_or_profile(args, folder, fit, served_positions: int, shape: PromptShape | None, console: Console):
    """The endpoint's cost model: its earlier run's samples fitted, or the endpoint profiled first (from the
    shortest prompt ``shape`` can make)."""
    from profiler.cli.fit import fit_and_print

    if (folder / "samples.csv").is_file():
        console.print(f"no fit {fit}: fitting the samples of the earlier endpoint run in {folder}")
        return fit_and_print(folder, args.fits, console)
    from profiler.cli.run_endpoint import EndpointRequest, run_endpoint

    shortest = shape.overhead_tokens + 1  # the exercises' calls read as few as 1 token
    lengths = f"{shortest}:{served_positions - N_OUT}"
    console.print(f"no fit {fit} and no earlier run: profiling {args.model} at {args.endpoint} first (lengths "
                  f"{lengths})")
    run_endpoint(EndpointRequest(url=args.endpoint, model=args.model, api_key_env=args.api_key_env,
                                 config=args.config, lengths=lengths, out=args.out, fits=args.fits), console)
    if not fit.is_file():
        raise UserError(f"the endpoint run wrote no fit {fit}: see its lines above")
    return load_cost_model(fit)
