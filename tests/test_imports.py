"""Commands that only read files start without torch, transformers or accelerate, and imports point one way.

Each read-only command runs in a fresh interpreter (a subprocess) on copies of the committed example
(``fits/example/gpt2--cpu-intel-xeon-processor-2t.json`` and its run under ``reports/``), which then lists
what it imported. The layering test reads every ``import`` under ``profiler/`` (at the top of a module
and inside functions alike) and fails on one that points up: ``measure`` < ``costmodel`` < ``lba`` <
``report`` < ``cli``, with ``errors``, ``files`` and ``lazy`` below them all.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_FIT = ROOT / "fits" / "example" / "gpt2--cpu-intel-xeon-processor-2t.json"
EXAMPLE_RUN = ROOT / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2"
HEAVY = ("torch", "transformers", "accelerate")

# Runs one command through main() and prints, as its last line, the heavy packages it imported.
_COMMAND_PROBE = """
import json, sys
from profiler.cli.main import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(%r))}))
""" % (HEAVY,)

# Refuses to import the heavy packages, as an environment without them would, then loads and prices a fit.
_BLOCKED_PROBE = """
import json, sys
from importlib.abc import MetaPathFinder

class Absent(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in %r:
            raise ImportError(f"{name} is not installed here")
        return None

sys.meta_path.insert(0, Absent())
import profiler
cost_model = profiler.load_cost_model(sys.argv[1])
print(json.dumps({"call_s": float(cost_model.call(128, 16)), "prefill_s": float(cost_model.prefill(256))}))
""" % (HEAVY,)


def _python(code: str, *args: str, cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def example(tmp_path) -> tuple[Path, Path]:
    """Copies of the committed fit (``fits/``) and its run: ``(fit, run folder)``. ``report``, ``fit`` and
    ``breakeven`` write beside what they are given: never into the checkout."""
    fits = tmp_path / "fits"
    fits.mkdir()
    fit = Path(shutil.copy(EXAMPLE_FIT, fits))
    run = tmp_path / "reports" / EXAMPLE_RUN.parent.name / EXAMPLE_RUN.name
    shutil.copytree(EXAMPLE_RUN, run, ignore=shutil.ignore_patterns("previous"))
    return fit, run


@pytest.mark.slow
@pytest.mark.parametrize("command", ["show", "fit", "breakeven", "report", "compare", "export"])
def test_a_read_only_command_imports_no_torch(command, example, tmp_path):
    fit, run = example
    argv = {
        "show": ["show", str(fit)],
        "fit": ["fit", str(run / "samples.csv"), "--fits", str(tmp_path / "refits")],
        "breakeven": ["breakeven", "--exercise", "all", "--fit", str(fit)],
        "report": ["report", str(run), "--fits", str(fit.parent)],
        "compare": ["compare", str(fit), str(fit), "--out", str(tmp_path / "compare")],
        "export": ["export", str(fit), "--out", str(tmp_path / "export"), "--usd-per-device-hour", "2"],
    }[command]
    outcome = _python(_COMMAND_PROBE, *argv, cwd=tmp_path)
    assert outcome == {"status": 0, "heavy": []}


def test_a_cost_model_loads_and_prices_without_torch(tmp_path):
    from profiler.costmodel.fit_file import load_cost_model

    priced = _python(_BLOCKED_PROBE, str(EXAMPLE_FIT), cwd=tmp_path)
    reference = load_cost_model(EXAMPLE_FIT)
    assert priced["call_s"] == pytest.approx(float(reference.call(128, 16)), rel=1e-12)
    assert priced["prefill_s"] == pytest.approx(float(reference.prefill(256)), rel=1e-12)


# Low to high; a module imports only its own layer and those below. errors, files and lazy import no layer.
LAYERS = ("measure", "costmodel", "lba", "report", "cli")
BASE = ("errors", "files", "lazy")
EXEMPT = ("profiler/__init__.py", "profiler/__main__.py")  # lazy re-exports of every layer


def _rank(module: str) -> int | None:
    """0 for a base module, 1.. for a layer (``profiler.report.style`` -> 4); None outside the package."""
    parts = module.split(".")
    if parts[0] != "profiler":
        return None
    if len(parts) == 1:
        return len(LAYERS) + 1  # the package itself re-exports every layer: importing it reaches them all
    return 0 if parts[1] in BASE else LAYERS.index(parts[1]) + 1


def _is_module(module: str) -> bool:
    path = ROOT.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, at any depth, relative ones made absolute;
    ``from package import module`` counts as importing the module."""
    package = ".".join(path.relative_to(ROOT).parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            found += [(node.lineno, f"{module}.{alias.name}" if _is_module(f"{module}.{alias.name}") else module)
                      for alias in node.names]
    return found


def upward_imports() -> list[str]:
    """``path:line imports module`` for every import of a higher layer than the importing module's."""
    problems = []
    for path in sorted((ROOT / "profiler").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        if name in EXEMPT:
            continue
        own = _rank(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for line, module in _imports(path):
            rank = _rank(module)
            if rank is not None and rank > own:
                problems.append(f"{name}:{line} imports {module}")
    return problems


def test_imports_point_down_the_layers():
    assert upward_imports() == []


def test_the_layering_check_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    """The check itself: an upward import inside a function, or written relative, is caught."""
    fake = tmp_path / "profiler"
    (fake / "measure").mkdir(parents=True)
    (fake / "measure" / "timing.py").write_text("def f():\n    from profiler.report import style\n")
    (fake / "measure" / "grid.py").write_text("from ..cli import main\nfrom profiler.errors import UserError\n")
    (fake / "files.py").write_text("from profiler.costmodel.fit import CurveFit\n")
    (fake / "cli").mkdir()
    (fake / "cli" / "main.py").write_text("import profiler.measure.grid\nfrom profiler.lba import breakeven\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert upward_imports() == ["profiler/files.py:1 imports profiler.costmodel.fit",
                                "profiler/measure/grid.py:1 imports profiler.cli.main",
                                "profiler/measure/timing.py:2 imports profiler.report"]


def test_breakeven_imports_no_scipy_unless_a_load_runs_in_parallel(example, tmp_path):
    """Evolution's sums over the searches still running (a load above 1, parallel) need scipy's special functions
    and negative binomial, about 1.3 s to import: only that pricing pays for them."""
    probe = _COMMAND_PROBE.replace("& set(%r)" % (HEAVY,), "& {'scipy'}")
    fit, _ = example
    assert _python(probe, "breakeven", "--exercise", "all", "--fit", str(fit), cwd=tmp_path) == {"status": 0, "heavy": []}
    parallel = ["breakeven", "--exercise", "evolution", "--schedule", "parallel", "--set", "load=2", "--values", "1,2"]
    assert _python(probe, *parallel, cwd=tmp_path) == {"status": 0, "heavy": ["scipy"]}
