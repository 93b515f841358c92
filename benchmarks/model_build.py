"""Time to build a random-weight model on the CPU: the project's ``load_model`` against the naive way.

What: wall seconds (``time.perf_counter``) to build a model, each build in a fresh Python
subprocess, after that subprocess has imported torch, transformers, accelerate and the
model's modeling module, so import and first-use costs fall outside the timed part and
are paid alike by both ways. Naive: ``AutoConfig.from_pretrained("models/<name>")`` then
``AutoModelForCausalLM.from_config(config)`` (float32, torch's per-element weight
initialisation). Project: ``load_model(resolve_model(name), cpu, float32)``, which builds
on the meta device and fills weights by tiling one random block (``profiler.measure.loading``).
Three subprocesses per way and model; the median is reported.

The ``cold`` rows show what a user sees instead: only torch and transformers imported
beforehand (as ``python -m profiler run`` has them when it builds), so the timed part
also pays the lazy imports: the modeling module, and accelerate for the project's way.

Why: every profiler run builds its model first; on a small CPU the naive build takes
longer than many of the passes measured afterwards.

Target: gpt2 built by ``load_model`` in 3 s or less (naive ``from_config``: ~6-8.5 s here).
qwen2.5-0.5b and smollm2-135m are reported for the project's way only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_GPT2_BUILD_S = 3.0

# Runs in the subprocess: {model}, {model_type} and {imports} are filled in; prints one JSON line.
_PRELUDE = """
import json, time
import torch, transformers
{imports}
from transformers import AutoConfig, AutoModelForCausalLM
from profiler.measure.catalog import resolve_model
from profiler.measure.loading import load_model
"""
_WARM_IMPORTS = "import accelerate, transformers.models.{model_type}.modeling_{model_type}"
_NAIVE = _PRELUDE + """
start = time.perf_counter()
config = AutoConfig.from_pretrained("models/{model}")
model = AutoModelForCausalLM.from_config(config)
build_s = time.perf_counter() - start
print(json.dumps({{"build_s": build_s, "params": sum(p.numel() for p in model.parameters())}}))
"""
_PROJECT = _PRELUDE + """
start = time.perf_counter()
loaded = load_model(resolve_model("{model}"), torch.device("cpu"), torch.float32)
build_s = time.perf_counter() - start
print(json.dumps({{"build_s": build_s, "params": loaded.architecture.params, "load_model_build_s": loaded.build_s}}))
"""


def build_once(template: str, model: str, warm: bool) -> dict:
    model_type = json.loads((ROOT / "models" / model / "config.json").read_text())["model_type"]
    imports = _WARM_IMPORTS.format(model_type=model_type) if warm else ""
    code = template.format(model=model, imports=imports)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"model_build: {model} build failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="subprocesses per way and model (default 3)")
    args = parser.parse_args()

    cases = [("gpt2", "naive", True), ("gpt2", "project", True), ("qwen2.5-0.5b", "project", True),
             ("smollm2-135m", "project", True), ("gpt2", "naive", False), ("gpt2", "project", False)]
    results = []
    for model, way, warm in cases:
        runs = [build_once(_NAIVE if way == "naive" else _PROJECT, model, warm) for _ in range(args.repeats)]
        builds_s = [r["build_s"] for r in runs]
        results.append({"model": model, "way": way, "imports": "warm" if warm else "cold", "params": runs[0]["params"],
                        "build_s": builds_s, "median_build_s": statistics.median(builds_s)})

    print(f"build time, float32 on CPU, fresh subprocess each ({args.repeats} per row); "
          "warm: imports done before the timer, cold: lazy imports timed")
    print(f"{'model':<14}  {'way':<8}  {'imports':<7}  {'params':>7}  {'median':>8}  {'all runs (s)'}")
    for r in results:
        runs = ", ".join(f"{s:.2f}" for s in r["build_s"])
        print(f"{r['model']:<14}  {r['way']:<8}  {r['imports']:<7}  {r['params'] / 1e6:>6.0f}M  "
              f"{r['median_build_s']:>6.2f} s  {runs}")
    gpt2 = {(r["way"], r["imports"]): r["median_build_s"] for r in results if r["model"] == "gpt2"}
    naive_s, project_s = gpt2["naive", "warm"], gpt2["project", "warm"]
    within = project_s <= TARGET_GPT2_BUILD_S
    print(f"gpt2 build only: project {project_s:.2f} s vs naive {naive_s:.2f} s ({naive_s / project_s:.1f}x faster); "
          f"target <= {TARGET_GPT2_BUILD_S:.0f} s: {'met' if within else 'NOT met'}")
    print(f"gpt2 with the lazy modeling import (cold): project {gpt2['project', 'cold']:.2f} s, "
          f"naive {gpt2['naive', 'cold']:.2f} s")
    print(json.dumps({
        "benchmark": "model_build", "device": "cpu", "dtype": "float32", "cpu_cores": os.cpu_count(),
        "repeats": args.repeats, "results": results, "gpt2_project_build_s": project_s,
        "gpt2_naive_build_s": naive_s, "speedup_ratio": naive_s / project_s,
        "gpt2_project_cold_build_s": gpt2["project", "cold"], "gpt2_naive_cold_build_s": gpt2["naive", "cold"],
        "target_gpt2_build_s": TARGET_GPT2_BUILD_S, "within_target": within,
    }))


if __name__ == "__main__":
    main()
