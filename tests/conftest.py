"""Tiny models (2 layers, 64 wide) of the three architectures, saved as local HF folders."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, LlamaConfig, Qwen2Config

from profiler.measure.catalog import ModelSource
from profiler.measure.loading import load_model

TINY_MAX_POSITIONS = 128

# A tiny model gains nothing from a second intra-op thread, and where other processes share the cores the
# threads wait on each other: a pass runs several times slower. Tests run torch on one thread (a test that
# passes --threads sets its own).
torch.set_num_threads(1)


def tiny_config(kind: str):
    common = dict(vocab_size=256, bos_token_id=0, eos_token_id=0)
    if kind == "gpt2":
        return GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=TINY_MAX_POSITIONS, **common)
    family = {"llama": LlamaConfig, "qwen2": Qwen2Config}[kind]
    return family(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=TINY_MAX_POSITIONS, **common)


def save_tiny(folder, kind: str):
    folder.mkdir(parents=True, exist_ok=True)
    tiny_config(kind).save_pretrained(folder)
    return folder


def run_tiny(root, kind: str):
    """``python -m profiler run`` of a tiny ``kind`` model under ``root`` (reports/, fits/): its run folder."""
    from profiler.cli.main import main

    tiny = save_tiny(root / "tiny", kind)
    argv = ["run", "--model", str(tiny), "--lengths", "8,16,32,64,128", "--budget", "4",
            "--out", str(root / "reports"), "--fits", str(root / "fits")]
    assert main(argv) == 0
    (folder,) = (root / "reports").glob("*/tiny")
    return folder


@pytest.fixture(autouse=True)
def _work_in_a_scratch_folder(tmp_path, monkeypatch):
    """Runs write reports/ and fits/ under the working directory: never into the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(params=["gpt2", "llama", "qwen2"])
def tiny_kind(request) -> str:
    return request.param


@pytest.fixture
def tiny_dir(tmp_path, tiny_kind):
    """A local folder with only a config.json: a random-weight model."""
    return save_tiny(tmp_path / f"tiny-{tiny_kind}", tiny_kind)


@pytest.fixture
def tiny_loaded(tiny_dir):
    return load_model(ModelSource(tiny_dir.name, tiny_dir, "local"), torch.device("cpu"), torch.float32)


@pytest.fixture(scope="session")
def fitted_pricing():
    """Calls priced by a cost model fitted to known latency curves (tests/fitted.py)."""
    from tests.fitted import pricing

    return pricing()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One real run of a tiny random-weight model, shared by the report tests: ``(run folder, fits folder)``.
    ``run`` ends with its fit and its report."""
    root = tmp_path_factory.mktemp("tiny-run")
    return run_tiny(root, "gpt2"), root / "fits"


@pytest.fixture(scope="session")
def tiny_fit(tiny_run):
    """``tiny_run``'s model folder and fit: ``(root, model folder, fit path)``; runs write under ``root/reports``."""
    folder, fits = tiny_run
    (fit,) = fits.glob("tiny--*.json")
    root = folder.parents[2]
    return root, root / "tiny", fit
