"""What ``run.json`` says of an endpoint run (``endpoint``), and the ``hardware.json`` facts of an endpoint.

``EndpointRecord`` is the server side of the run: the endpoint's URL as given (``address.parse_endpoint`` refuses
credentials, a query or a fragment in it, so nothing secret is in it) and its slug, the served model's name, the
name of the variable that held the key (never the key), how the output length was forced, the local config the
model's numbers and FLOPs came from, where its maximum positions came from, the prompt tokens the server adds to every prompt, the tokens each call of the length
sweep asked for, the calls made, the calls whose usage differed from what was asked (no row was written of them),
the calls whose chunks held several tokens (no decode rows from them), the median and 99th percentile of the gaps
between chunks of the others (ITL, seconds; ``numpy.percentile``, linear, as ``load`` takes them), every failed attempt (retried), the
concurrency sweep (levels asked, prompt and output tokens, rounds, each level measured) and the prefix-reuse probe
(or why it was not run), and the error that ended the run early, if one did.

Torch-free: ``run.json`` is read by commands that build no model.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field, fields

from profiler.measure.endpoint.load import ConcurrencyLevel, PrefixProbe
from profiler.measure.endpoint.rows import UsageMismatch

ENDPOINT_DEVICE = "endpoint"  # hardware.json's device of an endpoint run (``cpu`` and ``cuda`` for local ones)


@dataclass(frozen=True)
class EndpointRecord:
    url: str
    slug: str
    served_model: str
    api_key_env: str | None
    forcing: str  # ignore_eos, generation_config or none (client.EndpointClient.forcing), or "not probed"
    config: str | None  # the local config the model's numbers and FLOPs came from (None: none known)
    max_positions_from: str  # "config", "server" or "not known"
    prompt_overhead_tokens: int | None  # tokens the server adds to every prompt (None: not calibrated)
    n_out: int  # tokens each generating call of the length sweep asks for
    calls: int  # calls of the length sweep
    usage_mismatches: list[UsageMismatch] = field(default_factory=list)
    decode_rows_left_out: int = 0  # calls whose chunks were fewer than their tokens: no decode rows
    itl_p50_s: float | None = None  # the gaps between chunks of the length sweep's calls with decode rows, pooled
    itl_p99_s: float | None = None
    failures: list[dict] = field(default_factory=list)  # streamed_call.Failure.to_json of every failed attempt
    concurrency_asked: list[int] = field(default_factory=list)
    concurrency_n_in: int | None = None
    concurrency_rounds: int | None = None
    concurrency: list[ConcurrencyLevel] = field(default_factory=list)
    concurrency_skipped: str | None = None
    prefix_probe: PrefixProbe | None = None
    prefix_probe_skipped: str | None = None
    stopped: str | None = None  # the error that ended the run before its budget

    def to_json(self) -> dict:
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        return record | {"usage_mismatches": [m.to_json() for m in self.usage_mismatches],
                         "concurrency": [level.to_json() for level in self.concurrency],
                         "prefix_probe": self.prefix_probe.to_json() if self.prefix_probe else None}

    @classmethod
    def from_json(cls, record: dict) -> EndpointRecord:
        """The record as ``to_json`` wrote it; ``TypeError``, ``KeyError`` or ``ValueError`` otherwise."""
        if not isinstance(record, dict):
            raise ValueError(f"endpoint is {type(record).__name__}, not a record")
        probe = record.get("prefix_probe")
        return cls(**{**record,
                      "usage_mismatches": [UsageMismatch.from_json(m) for m in record.get("usage_mismatches", [])],
                      "concurrency": [ConcurrencyLevel.from_json(level) for level in record.get("concurrency", [])],
                      "prefix_probe": PrefixProbe.from_json(probe) if probe else None})


def endpoint_facts(url: str, served_model: str) -> dict:
    """``hardware.json``'s facts of an endpoint: what a client can know of it (its URL and the model it serves)
    and the client that measured it. No ceilings: the server's devices are not visible from here."""
    import httpx2

    return {"device": ENDPOINT_DEVICE, "endpoint": url, "served_model": served_model,
            "client_os": platform.platform(), "python": platform.python_version(), "httpx2": httpx2.__version__}
