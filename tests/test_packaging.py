"""The shipped model configs must be found from an installed wheel, not only from the checkout."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_model_configs_and_finds_them(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("aalp_profiler-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "profiler/bundled_models/smollm2-135m/config.json" in names
    assert "profiler/fit_schema.json" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    probe = ("from profiler.measure.catalog import resolve_model; from profiler.costmodel.fit_file import _SCHEMA_PATHS; "
             "assert _SCHEMA_PATHS[0].is_file(); print(resolve_model('qwen2.5-0.5b').path)")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env={"PYTHONPATH": str(target)},
                           check=True, capture_output=True, text=True).stdout.strip()
    assert Path(found) == target / "profiler" / "bundled_models" / "qwen2.5-0.5b"
