"""``breakeven --unit usd``: its options checked together, and the pricing in dollars they make.

- ``--price-sheet FILE`` (``profiler.lba.price_sheet``): every call at a provider's per-million-token
  prices (``profiler.lba.dollars.SheetPricing``). ``--price-model NAME``: the sheet's model that prices
  every role (needless when the sheet has one model); ``--role-price ROLE=NAME`` (repeatable, once a
  role): a role's own model, whatever its size.
- ``--usd-per-device-hour X`` with ``--fit``: the fit's seconds times ``X / 3600``
  (``profiler.lba.dollars.DeviceHourPricing``): every ratio and break-even is the seconds one.

Refused in one line, before anything is priced: ``--unit usd`` with neither or both;
``--price-sheet``, ``--price-model``, ``--role-price`` or ``--usd-per-device-hour`` without it;
``--price-model`` or ``--role-price`` without a sheet; a sheet with ``--fit`` or ``--primitive paper``;
a device-hour rate without ``--fit``; a ``--metric`` other than ``latency_s`` (a sheet prices tokens, a
rate prices seconds); ``--schedule parallel`` (a provider bills calls, not batches, and a makespan has
no price).
"""

from __future__ import annotations

from profiler.errors import UserError
from profiler.lba.dollars import DeviceHourPricing, SheetPricing
from profiler.lba.price_sheet import PriceSheet, read_price_sheet
from profiler.lba.pricing import Pricing


def usd_pricing(args, pricing: Pricing) -> Pricing:
    """``pricing`` as it is without ``--unit usd``; with it, the dollar pricing its options make (see the
    module doc). ``pricing`` is the fit's (or the paper's primitive when there is no ``--fit``)."""
    given = [option for option, value in (("--price-sheet", args.price_sheet), ("--price-model", args.price_model),
                                          ("--role-price", args.role_price),
                                          ("--usd-per-device-hour", args.usd_per_device_hour))
             if value is not None and value != []]
    if args.unit is None:
        if given:
            raise UserError(f"{given[0]} prices in dollars: add --unit usd")
        return pricing
    if args.metric != "latency_s":
        raise UserError("--unit usd prices tokens (--price-sheet) or fitted seconds (--usd-per-device-hour): "
                        "use --metric latency_s")
    if args.schedule == "parallel":
        raise UserError("--unit usd prices calls one after another (a provider bills calls, not batches, and a "
                        "makespan has no price): drop --schedule parallel")
    if args.price_sheet is None and args.usd_per_device_hour is None:
        raise UserError("--unit usd needs --price-sheet FILE (a provider's prices per million tokens) or "
                        "--usd-per-device-hour X with --fit (local hardware)")
    if args.price_sheet is not None and args.usd_per_device_hour is not None:
        raise UserError("--price-sheet and --usd-per-device-hour are alternatives: give one")
    if args.usd_per_device_hour is not None:
        if args.price_model or args.role_price:
            raise UserError("--price-model and --role-price choose a price sheet's models: add --price-sheet")
        if not args.fit:
            raise UserError("--usd-per-device-hour prices a fit's seconds: add --fit")
        return DeviceHourPricing(pricing, args.usd_per_device_hour)
    if args.fit or args.primitive:
        raise UserError("--price-sheet prices tokens at a provider's prices: drop --fit and --primitive "
                        "(--usd-per-device-hour prices a fit in dollars)")
    sheet = read_price_sheet(args.price_sheet)
    return SheetPricing(sheet, _base(sheet, args.price_model), _role_prices(sheet, args.role_price))


def _base(sheet: PriceSheet, name: str | None):
    """The model of ``--price-model``, or the sheet's only one."""
    if name is not None:
        return sheet.model(name, "--price-model")
    if len(sheet.models) == 1:
        return next(iter(sheet.models.values()))
    raise UserError(f"the price sheet prices {len(sheet.models):,} models: choose the one for every role with "
                    "--price-model NAME")


def _role_prices(sheet: PriceSheet, specs: list[str]) -> dict:
    """``--role-price ROLE=NAME`` options as ``{role: ModelPrices}``: each role once, each a role of an exercise."""
    from profiler.cli.breakeven import ROLES  # the command that calls this one

    prices = {}
    for spec in specs:
        role, _, name = spec.partition("=")
        if role not in ROLES or not name:
            raise UserError(f"--role-price {spec!r}: expected ROLE=NAME with ROLE one of {', '.join(ROLES)}")
        if role in prices:
            raise UserError(f"--role-price: {role} is given twice")
        prices[role] = sheet.model(name, f"--role-price {role}")
    return prices
