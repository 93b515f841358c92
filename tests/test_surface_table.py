"""The surfaces' console tables (profiler.cli.surface_table): each formula printed as written, brackets included."""

import json
from pathlib import Path

import numpy as np
from rich.console import Console

from profiler.cli.surface_table import print_extend, print_surfaces
from profiler.costmodel.extend import fit_extend
from profiler.costmodel.extend_forms import EXTEND_FORMS
from profiler.costmodel.fit import fit_curve
from profiler.costmodel.fit_file import SCHEMA_VERSION, load_cost_model
from profiler.costmodel.per_batch_form import PerBatchForm
from profiler.costmodel.surface import fit_surface

OLD_FIT = Path(__file__).resolve().parent / "data" / "gpt2-fit-schema-1.4.json"


def test_the_per_batch_and_two_kernel_formulas_print_as_written(tmp_path):
    form = PerBatchForm((1, 2, 4, 8))
    batch, n = (a.ravel() for a in np.meshgrid([1, 2, 4, 8], [8, 91, 256], indexing="ij"))
    y = form.evaluate(np.array([0.066, 0.106, 0.196, 0.147, 1e-5]), np.stack([batch, n], axis=-1).astype(float))
    decode = fit_surface("decode", batch, n, y)
    points = [(0, s) for s in (8, 16, 32, 64, 128, 256)] + [(c, 1) for c in (8, 64, 256, 512)] + [
        (c, s) for c in (64, 256) for s in (16, 64)]
    cached, new = np.array(points, dtype=float).T
    two_kernel = EXTEND_FORMS["two-kernel"]
    latency = two_kernel.evaluate(np.array([0.07, 0.08, 2e-3, 1e-6, 1e-6]), np.stack([cached, new], axis=-1))
    prefill = fit_curve(new[cached == 0], latency[cached == 0], "s", preferred="quadratic")
    steps = (cached > 0) & (new == 1)
    decode_curve = fit_curve(cached[steps], latency[steps], "s", preferred="affine")
    extend = fit_extend(cached, new, latency, prefill, decode_curve)
    document = json.loads(OLD_FIT.read_text()) | {"schema_version": SCHEMA_VERSION,
                                                  "surfaces": {"decode": decode.as_dict()}, "extend": extend.as_dict()}
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(document))
    cm = load_cost_model(path)
    console = Console(record=True, width=400)
    print_surfaces(console, cm)
    print_extend(console, cm)
    text = console.export_text()
    assert "a_B + b*B*n (a_B per batch measured: 1, 2, 4, 8)" in text
    assert extend.form.name == "two-kernel" and "a + m*[s>1] + b*s + e*s*c + f*s^2" in text
