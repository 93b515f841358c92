"""How a random-weight mixture of experts routes a prefill, against uniform random routing.

What: a model (``--model``: a name under models/ or a folder; default granite-3.0-1b-a400m: 32 experts, top-8, 24 layers)
built with random weights on the CPU in float32, then ``profiler.measure.routing_pass.measure_routing``
at each length (``--lengths``, default 128,1024): the routing of one prefill of the sweep's prompt
(seed 0), read as each experts module was handed it. ``--layers N`` keeps the first N layers
(a config with fewer layers: the same router and expert sizes, less time and memory). Prints
per length: the load ratio (the busiest expert's tokens over the balanced share, summed over
layers), the worst layer's, the coefficient of variation, the fewest experts a layer used, the
uniform-routing ratio, and the seconds the pass took; then one JSON line.

Why: the report says what the routing balance means for a mixture of experts' cost, and that
random weights route otherwise than trained ones; this measures how random weights route a
realistic expert count, against the ratio uniform random routing of the same tokens would give.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch

from profiler.cli.arguments import count
from profiler.errors import UserError
from profiler.files import read_json, write_json
from profiler.measure.catalog import ModelSource, resolve_model
from profiler.measure.config_check import MAX_NUMBER
from profiler.measure.grid import check_lengths, parse_lengths
from profiler.measure.loading import load_model, meta_architecture
from profiler.measure.routing_pass import measure_routing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="granite-3.0-1b-a400m", help="a name under models/ or a local folder")
    parser.add_argument("--lengths", default="128,1024")
    parser.add_argument("--layers", type=count(1, MAX_NUMBER["layers"]), default=None)
    args = parser.parse_args()
    try:  # every input checked before the model is copied or built
        source = resolve_model(args.model)
        lengths = parse_lengths(args.lengths)
        check_lengths(lengths, meta_architecture(source).max_positions, source.name)
    except UserError as err:
        print(f"moe_routing.py: error: {err}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / source.path.name
        shutil.copytree(source.path, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.pt"))
        config = read_json(folder / "config.json")
        if args.layers:
            write_json(folder / "config.json", {**config, "num_hidden_layers": args.layers})
        started = time.perf_counter()
        loaded = load_model(ModelSource(folder.name, folder, "local"), torch.device("cpu"), torch.float32)
        print(f"{source.name}: {loaded.architecture.params / 1e6:,.0f}M parameters, "
              f"{loaded.architecture.layers} layers, built in {time.perf_counter() - started:.1f} s")
        rows = []
        print(f"{'tokens':>7} {'load':>6} {'worst':>6} {'cv':>5} {'used':>5} {'uniform':>8} {'pass_s':>7}")
        for n in lengths:
            started = time.perf_counter()
            routing = measure_routing(loaded, n)
            seconds = time.perf_counter() - started
            rows.append({"tokens": n, **routing.summary(), "top_k": routing.top_k, "experts": routing.experts,
                         "layers": len(routing.layers), "pass_s": seconds})
            print(f"{n:>7} {routing.load_ratio:>6.2f} {routing.worst_layer_ratio:>6.2f} {routing.cv:>5.2f} "
                  f"{routing.experts_touched:>5} {routing.uniform_load_ratio:>8.2f} {seconds:>7.1f}")
    print(json.dumps({"model": source.name, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
