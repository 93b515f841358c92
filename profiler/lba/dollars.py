"""Calls priced in US dollars: at a provider's published prices, or at a price per device-hour.

Two pricings (``profiler.lba.pricing.Pricing``) in ``USD``, so the exercises, the break-even and its
maps price in dollars as they price in seconds:

- ``SheetPricing``: a price sheet's per-million-token prices (``profiler.lba.price_sheet``). A call
  costs ``ModelPrices.call_usd``: its uncached input tokens at the input price, the tokens it finds in
  the provider's prompt cache (``cached``: prefix reuse, ``profiler.lba.prefix_cache``) at the
  cached-input price, its output tokens at the output price. ``base`` prices every role, ``role_prices``
  the roles given their own model. A role with a model of its own pays that model's prices whatever its
  size (the role *is* that model, as a fit's ``role_models`` are); a role priced by ``base`` at ``size``
  times the base model's size pays ``size`` times ``base``'s prices -- the paper's linearity in ``m``
  (the k-task generalist is ``k`` specialists), an assumption ``assumptions`` states. A provider bills
  calls, not batches: a sheet prices calls one after another only (``batch`` is refused).
- ``DeviceHourPricing``: local hardware at ``usd_per_device_hour``: another pricing's seconds (a fit's,
  ``FittedPricing``) times the rate over 3,600. Every price is the seconds one scaled, so every ratio,
  break-even and map is the seconds one: only the unit changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from profiler.lba.price_sheet import ModelPrices, PriceSheet
from profiler.lba.pricing import Pricing

if TYPE_CHECKING:
    from profiler.lba.schedule import Schedule

USD = "USD"
SECONDS_PER_HOUR = 3600.0


class SheetPricing:
    """Calls priced at a price sheet's prices: ``base`` (a model of ``sheet``) for every role, ``role_prices``
    for named roles (see the module doc)."""

    unit = USD
    cache = True  # a call's cached prefix is priced (at the cached-input price) when prefix reuse is on

    def __init__(self, sheet: PriceSheet, base: ModelPrices, role_prices: Mapping[str, ModelPrices] | None = None):
        self.sheet = sheet
        self.base = base
        self.role_models = dict(role_prices or {})  # the roles priced by a model of their own
        roles = "".join(f", {role} at {prices.name}'s" for role, prices in sorted(self.role_models.items()))
        self.name = f"{base.name}'s prices{roles} ({sheet.host}, read {sheet.read_on.isoformat()})"

    def price(self, role: str, n_in, n_out, size=1.0, cached=0):
        """USD of the call (``ModelPrices.call_usd``), times ``size`` for a role priced by the base model."""
        if role in self.role_models:
            return self.role_models[role].call_usd(n_in, n_out, cached)
        return np.asarray(size, dtype=float) * self.base.call_usd(n_in, n_out, cached)

    def batch(self, role: str, n_in, n_out, batch, size=1.0):
        raise ValueError("a price sheet prices calls one after another, not batches")

    def max_batch(self, role: str) -> float:
        return 1.0

    def longest_measured(self, role: str) -> float:
        return math.inf  # nothing measured: a sheet's price holds at any length

    def max_positions(self, role: str) -> float:
        return math.inf  # a sheet does not say a model's context window

    def assumptions(self, resized: bool, schedule: Schedule | None = None) -> list[str]:
        notes = [f"prices of {self.sheet.source}, read on {self.sheet.read_on.isoformat()}, in USD per million "
                 "tokens: a call pays its uncached input tokens at the input price, its cached ones at the "
                 "cached-input price and its output tokens at the output price; nothing else is billed (no "
                 "prompt-cache write premium, per-request fee, long-context tier or batch discount)"]
        reuse = schedule is not None and schedule.reuse is not None
        models = [self.base, *self.role_models.values()]
        if not reuse and any(m.cached_input_usd_per_mtok != m.input_usd_per_mtok for m in models):
            notes.append("no prefix reuse: every input token at the input price (--prefix-cache on prices the "
                         "tokens a provider finds in its prompt cache at the cached-input price)")
        unpriced = sorted({m.name for m in models if not m.cached_input_given})
        if reuse and unpriced:
            notes.append(f"the sheet gives no cached-input price for {', '.join(unpriced)}: cached input tokens "
                         "at the input price")
        if resized:
            notes.append(f"a role without a model of its own (--role-price) at s times the base model's size pays "
                         f"s times {self.base.name}'s prices (the paper's linearity in m)")
        return notes


class DeviceHourPricing:
    """``seconds`` (a pricing in ``s``) times ``usd_per_device_hour / 3600``: local hardware in dollars."""

    unit = USD

    def __init__(self, seconds: Pricing, usd_per_device_hour: float):
        if seconds.unit != "s":
            raise ValueError(f"a device-hour prices seconds, not {seconds.unit}")
        self.seconds = seconds
        self.usd_per_device_hour = float(usd_per_device_hour)
        self.usd_per_s = self.usd_per_device_hour / SECONDS_PER_HOUR
        self.name = f"{seconds.name}, at ${self.usd_per_device_hour:g} a device-hour"
        self.cache = seconds.cache
        self.role_models = seconds.role_models

    def price(self, role: str, n_in, n_out, size=1.0, cached=0):
        return self.usd_per_s * self.seconds.price(role, n_in, n_out, size, cached)

    def batch(self, role: str, n_in, n_out, batch, size=1.0):
        device, duration = self.seconds.batch(role, n_in, n_out, batch, size)
        return self.usd_per_s * device, self.usd_per_s * duration

    def max_batch(self, role: str) -> float:
        return self.seconds.max_batch(role)

    def longest_measured(self, role: str) -> float:
        return self.seconds.longest_measured(role)

    def max_positions(self, role: str) -> float:
        return self.seconds.max_positions(role)

    def assumptions(self, resized: bool, schedule: Schedule | None = None) -> list[str]:
        return self.seconds.assumptions(resized, schedule) + [
            f"a device-hour costs ${self.usd_per_device_hour:g}: a call costs its fitted seconds times "
            f"${self.usd_per_device_hour:g} / 3,600 (the device billed only while it computes the call: no idle "
            "time, queueing or load below full)"]
