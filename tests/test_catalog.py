import pytest

from profiler.measure.catalog import named_models, resolve_model
from profiler.errors import UserError
from tests.conftest import save_tiny

SHIPPED = {"distilgpt2", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "smollm2-135m", "qwen2.5-0.5b"}


def test_every_shipped_model_is_found_by_name():
    assert SHIPPED <= {source.name for source in named_models()}
    assert resolve_model("SmolLM2-135M").name == "smollm2-135m"
    assert (resolve_model("gpt2").path / "config.json").is_file()


def test_working_directory_models_folder_comes_first(tmp_path, monkeypatch):
    save_tiny(tmp_path / "models" / "gpt2", "gpt2")
    monkeypatch.chdir(tmp_path)
    assert resolve_model("gpt2").path == (tmp_path / "models" / "gpt2").resolve()


def test_local_folder(tmp_path):
    folder = save_tiny(tmp_path / "mine", "llama")
    source = resolve_model(str(folder))
    assert (source.origin, source.path, source.has_weights) == ("local", folder.resolve(), False)


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_hub_id_is_found_in_the_local_cache_only(tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / "abc123"
    save_tiny(snapshot, "gpt2")
    (tmp_path / "hub" / "models--acme--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    source = resolve_model("acme/tiny")
    assert (source.origin, source.path) == ("hf-cache", snapshot)
    with pytest.raises(UserError, match="unknown model 'acme/absent'"):
        resolve_model("acme/absent")


def test_unknown_model_names_what_exists():
    with pytest.raises(UserError) as err:
        resolve_model("no-such-model")
    assert "gpt2" in str(err.value) and "\n" not in str(err.value)
