"""``python -m profiler breakeven``: price the three exercises and print where each breaks even.

Pricing: ``--primitive paper`` (the default), or ``--fit FIT`` -- the base model for every
role. Other model sizes (the k-task generalist is ``k`` specialists) come from a size law
of the base model's family: from several ``--fit`` files, or else from the fits of the same
family, hardware and dtype found beside the first one; with none, cost is taken as linear in
size and the output says so. ``--role ROLE=FIT`` gives one role its own model.

With ``--exercise all`` and a fit, each exercise also gets a figure next to the fit
(``<fit stem>.breakeven-<exercise>.png``): its ratio along the main variable, priced by the
fit and by the paper's primitive, and a 2-D map with the break-even contour
(``profiler.cli.breakeven_figure``); the tables are ``profiler.cli.breakeven_console``'s.

``--schedule parallel`` (``--max-batch N``, ``--devices D``) lays each group of independent
calls out in batches over devices (``profiler.lba.schedule``): each exercise is shown priced in
device time and in makespan, each with its break-even, then the sequential sum's break-even;
the figures and maps are priced in makespan. ``--max-batch`` and ``--devices`` without it are
refused (they would change nothing), and so are ``--no-cache`` and ``--metric flops`` with it
(batched calls keep a KV cache; a makespan is a time).

``--prefix-cache on`` (``--cache-capacity TOKENS``) prices with prefix reuse between calls: each
model keeps what its calls read and wrote, and the programs' calls are replayed one after another
through that cache (``profiler.lba.reuse``); the fit's extend surface prices a call's cached
prefix. It is sequential only (the extend pass is measured at batch 1), needs a KV cache and
prices latency: with ``--schedule parallel``, ``--no-cache`` or ``--metric flops`` it is refused,
and ``--cache-capacity`` without it too. The paper's primitive has no cache: its prices stay.

``--unit usd`` prices in US dollars (``profiler.cli.breakeven_usd``): a provider's price sheet
(``--price-sheet``), or a fit's seconds at ``--usd-per-device-hour``.

``--metric energy_j`` prices joules from the fit's energy curves (a run that read an energy counter,
``profiler.measure.energy``); a fit without them is refused in one line saying why (no counter where it was measured,
or passes too short for the counter). ``--metric flops`` on a served model's fit made from latency alone (no config
known here: ``CostModel.check_flops``) is refused in one line too.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from profiler.cli.breakeven_console import print_sweep
from profiler.cli.breakeven_figure import check_figure_paths, draw, figure_data, print_figure
from profiler.cli.breakeven_usd import usd_pricing
from profiler.costmodel.family import FamilyCostModel
from profiler.costmodel.fit_file import load_cost_model
from profiler.errors import UserError
from profiler.files import fit_pattern
from profiler.lba.breakeven import sweep
from profiler.lba.exercises import EXERCISES
from profiler.lba.monte_carlo import add_monte_carlo
from profiler.lba.parameters import check_variable, exercise_named, parse_settings, parse_values
from profiler.lba.prefix_cache import Reuse
from profiler.lba.pricing import FittedPricing, PaperPrimitive
from profiler.lba.schedule import SEQUENTIAL, Schedule

ROLES = sorted({role for e in EXERCISES.values() for roles in e.roles.values() for role in roles})


def parameters_help() -> str:
    """Every exercise's parameters with their defaults, for ``--help``."""
    lines = ["exercise parameters (--set NAME=VALUE: name, default, range; sizes are relative to the base model, "
             "counts and tokens whole numbers):"]
    for exercise in EXERCISES.values():
        lines.append(f"  {exercise.name} ({exercise.title}; varies {exercise.main} by default):")
        for param in exercise.all_params().values():
            lines.append(f"    {param.name:<16} {param.default:<6g} {param.span():<24} {param.help}")
    return "\n".join(lines)


def _family_beside(path: Path, base) -> list:
    """The base model and the others of its family (same architecture, hardware, dtype) in its folder."""
    members = [base]
    if base.model.non_embedding_params is None:  # a served model fitted from latency alone: no size, no family
        return members
    pattern = fit_pattern(base.hardware_slug, base.model.dtype, base.hardware.get("device"))
    for candidate in sorted(path.parent.glob(pattern)):
        if candidate.resolve() == path.resolve():
            continue
        try:
            cost_model = load_cost_model(candidate)
        except UserError:
            continue
        kind = (cost_model.model.model_type, cost_model.hardware_slug, cost_model.model.dtype)
        copy = cost_model.model.name in {m.model.name for m in members}  # a copy of a member: no second size
        if kind == (base.model.model_type, base.hardware_slug, base.model.dtype) and not copy:
            members.append(cost_model)
    return members


def fitted_pricing(fits: list[Path], roles: list[str], cache: bool, metric: str) -> FittedPricing:
    """The pricing of ``--fit`` (first: the base model; more: its family), ``--role`` and ``--no-cache``."""
    base = load_cost_model(fits[0])
    members = [base, *map(load_cost_model, fits[1:])] if len(fits) > 1 else _family_beside(fits[0], base)
    family = None
    if metric == "latency_s" and len(members) >= 2:
        try:
            family = FamilyCostModel(members)
        except ValueError as err:
            raise UserError(f"--fit: {err}") from None
    role_models = {}
    for spec in roles:
        role, _, path = spec.partition("=")
        if role not in ROLES or not path:
            raise UserError(f"--role {spec!r}: expected ROLE=FIT with ROLE one of {', '.join(ROLES)}")
        role_models[role] = load_cost_model(path)
    for cost_model in (base, *role_models.values()) if metric == "energy_j" else ():
        cost_model.check_energy(cache)  # a fit without energy curves: one line, before anything is priced
    for cost_model in (base, *role_models.values()) if metric == "flops" else ():
        cost_model.check_flops()  # a served model fitted from latency alone: one line, before anything is priced
    return FittedPricing(base, role_models=role_models, family=family, cache=cache, metric=metric)


def _grid(exercise, vary: str | None, values: str | None) -> tuple[str, list[float]]:
    vary = vary or exercise.main
    check_variable(exercise, vary)
    if values is not None:
        return vary, parse_values(values, vary)
    if vary != exercise.main:
        raise UserError(f"--vary {vary}: give its grid with --values")
    return vary, [float(v) for v in exercise.main_values]


def run_breakeven(args, console: Console) -> int:
    """Every exercise priced (and its figure's data computed) before anything is printed or drawn: a
    mistake found on the way ends the command with nothing written."""
    if args.primitive and args.fit:
        raise UserError("--primitive paper and --fit are alternatives: give one")
    if not args.fit and (args.role or args.no_cache):
        raise UserError("--role and --no-cache need --fit: the paper's primitive has no cache and one model size")
    schedule = _schedule(args)
    pricing = fitted_pricing(args.fit, args.role, not args.no_cache, args.metric) if args.fit else PaperPrimitive()
    if schedule.reuse is not None and args.fit:  # a fit without the extend surface: said before any replay
        for cost_model in (pricing.base, *pricing.role_models.values()):
            cost_model.extend_surface()
    pricing = usd_pricing(args, pricing)  # --unit usd: in dollars (profiler.cli.breakeven_usd)
    exercises = list(EXERCISES.values()) if args.exercise == "all" else [exercise_named(args.exercise)]
    planned = []
    for exercise in exercises:
        vary, values = _grid(exercise, args.vary, args.values)
        params = parse_settings(exercise, args.set, vary)
        document = sweep(exercise, vary, values, params, pricing, schedule)
        if args.monte_carlo:
            add_monte_carlo(exercise, document, params, pricing, args.monte_carlo, schedule)
        figure = None
        if args.exercise == "all" and args.fit:
            figure = figure_data(exercise, document, params, pricing, Path(args.fit[0]), schedule)
        planned.append((document, figure))
    check_figure_paths([figure.path for _, figure in planned if figure])
    draw([(document, figure) for document, figure in planned if figure])
    for document, figure in planned:
        if not args.json:
            print_sweep(console, document)
            if figure:
                print_figure(console, document, figure)
    if args.json:
        jsons = [document.to_json() for document, _ in planned]
        print(json.dumps(jsons[0] if len(jsons) == 1 else {"exercises": jsons}, indent=1))
    return 0


def schedule_of(args) -> Schedule:
    """The schedule of ``--schedule``, ``--max-batch`` and ``--devices`` (breakeven's and validate's); a one-line
    UserError for flags that would change nothing."""
    if args.schedule == "sequential":
        if args.max_batch is not None or args.devices is not None:
            raise UserError("--max-batch and --devices lay out a parallel schedule: add --schedule parallel")
        return SEQUENTIAL
    return Schedule("parallel", max_batch=args.max_batch, devices=args.devices or 1)


def reuse_of(args) -> Reuse | None:
    """The prefix reuse of ``--prefix-cache`` and ``--cache-capacity`` (breakeven's and validate's): None when off;
    a one-line UserError for a capacity without it."""
    if args.prefix_cache == "off":
        if args.cache_capacity is not None:
            raise UserError("--cache-capacity sizes the prefix cache: add --prefix-cache on")
        return None
    return Reuse(args.cache_capacity)


def _schedule(args) -> Schedule:
    """``schedule_of`` with ``reuse_of``; a one-line UserError also for prices a parallel schedule or prefix reuse
    cannot give."""
    schedule, reuse = schedule_of(args), reuse_of(args)
    if schedule.parallel and args.no_cache:
        raise UserError("--schedule parallel prices batched calls, which keep a KV cache: drop --no-cache")
    if schedule.parallel and args.metric != "latency_s":
        raise UserError("--schedule parallel prices time (device time and makespan): use --metric latency_s")
    if reuse is None:
        return schedule
    if schedule.parallel:
        raise UserError("--prefix-cache on prices calls one after another (the extend pass of a cached prefix is "
                        "measured at batch 1 only): drop --schedule parallel")
    if args.no_cache:
        raise UserError("--prefix-cache on keeps KV caches between calls: drop --no-cache")
    if args.metric != "latency_s":
        raise UserError("--prefix-cache on prices a cached prefix by the fit's extend surface, a time: use "
                        "--metric latency_s")
    return replace(schedule, reuse=reuse)


