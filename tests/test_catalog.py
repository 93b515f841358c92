import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from profiler.cli.main import main
from profiler.cli.models import print_inventory
from profiler.errors import UserError
from profiler.measure.catalog import named_models, resolve_model
from tests.conftest import save_tiny
from tests.user_error import run_argv, stop_before_measuring, user_error

SHIPPED = {"distilgpt2", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "smollm2-135m", "qwen2.5-0.5b",
           "llama-3.2-1b", "qwen3-0.6b", "gemma-3-270m", "granite-3.0-1b-a400m"}


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


def test_a_spoilt_hub_cache_is_one_line(tmp_path, monkeypatch):
    repo = tmp_path / "hub" / "models--acme--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "snapshots").write_text("a file where a folder belongs")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(UserError, match=r"^--model 'acme/tiny': cannot read the Hugging Face cache \(Not a directory"):
        resolve_model("acme/tiny")
    (repo / "refs" / "main").write_bytes(b"\xff\xfe")  # a ref that is not text
    with pytest.raises(UserError, match="^--model 'acme/tiny': cannot read the Hugging Face cache .*utf-8"):
        resolve_model("acme/tiny")


def test_unknown_model_names_what_exists():
    with pytest.raises(UserError) as err:
        resolve_model("no-such-model")
    assert "gpt2" in str(err.value) and "\n" not in str(err.value)


# -- every --model a user may type ends in a model folder or in one line ---------------------





def _link_loop(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    return tmp_path / "loop"


def _dangling_link(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    return tmp_path / "dangling"


def _a_file(tmp_path):
    (tmp_path / "a-file").write_text("not a model")
    return tmp_path / "a-file"


def _empty_folder(tmp_path):
    (tmp_path / "empty-folder").mkdir()
    return tmp_path / "empty-folder"


def _link_to_a_name_with_a_newline(tmp_path):
    save_tiny(tmp_path / "two\nlines", "gpt2")
    (tmp_path / "link").symlink_to(tmp_path / "two\nlines")
    return tmp_path / "link"


NOT_MODELS = {  # id: (the --model value, made in tmp_path; what the line must say)
    "absolute path": (lambda tmp: "/no/such/dir", "unknown model '/no/such/dir'"),
    "relative path": (lambda tmp: "no/such/dir", "unknown model 'no/such/dir'"),
    "link loop": (_link_loop, "a link that leads nowhere (broken, or a loop)"),
    "inside a link loop": (lambda tmp: _link_loop(tmp) / "x", "unknown model"),
    "dangling link": (_dangling_link, "a link that leads nowhere"),
    "a file": (_a_file, "a file, not a model folder"),
    "folder without config": (_empty_folder, "folder has no config.json"),
    "link to a name with a newline": (_link_to_a_name_with_a_newline, r"the folder's name 'two\nlines' cannot name"),
    "empty": (lambda tmp: "", "--model '': empty"),
    "blank": (lambda tmp: "  ", "--model '  ': empty"),
    "newline": (lambda tmp: "two\nlines", r"--model 'two\nlines': control characters"),
    "control character": (lambda tmp: "acme/\x01tiny", "control characters"),
    "dots and slashes": (lambda tmp: "acme/..//x", "unknown model 'acme/..//x'"),
    "dashes": (lambda tmp: "-/-", "unknown model '-/-'"),
    "name too long": (lambda tmp: "a" * 300 + "/b", "cannot look at it (File name too long)"),
    "unknown user's home": (lambda tmp: "~no-such-user-here/model", "unknown model '~no-such-user-here/model'"),
    "unicode and spaces": (lambda tmp: "Ünïcödé model/名前", "unknown model 'Ünïcödé model/名前'"),
}


@pytest.mark.parametrize("case", NOT_MODELS.values(), ids=NOT_MODELS.keys())
def test_a_model_that_is_not_there_is_one_line_before_anything_is_built(case, tmp_path, capfd, monkeypatch):
    make_spec, expected = case
    stop_before_measuring(monkeypatch)
    assert expected in user_error(capfd, run_argv(make_spec(tmp_path)))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder: chmod cannot stop it")
def test_a_folder_that_may_not_be_read(tmp_path, capfd, monkeypatch):
    locked = save_tiny(tmp_path / "locked", "gpt2")
    locked.chmod(0o000)
    stop_before_measuring(monkeypatch)
    try:
        assert "a folder this user may not read" in user_error(capfd, run_argv(locked))
    finally:
        locked.chmod(0o755)


def test_odd_but_printable_folder_names_are_models(tmp_path):
    for name in ["with space", "Ünïcödé 名前", "-leading-dash", "dots.in.name"]:
        folder = save_tiny(tmp_path / name, "gpt2")
        assert resolve_model(str(folder)).name == name


def test_the_hub_cache_lookup_outside_python(tmp_path):
    """The fault as a user met it: a path with a slash that is no folder, through ``python -m profiler``."""
    done = subprocess.run([sys.executable, "-m", "profiler", "run", "--model", "/no/such/dir"], capture_output=True,
                          text=True, cwd=tmp_path, env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()] and "unknown model '/no/such/dir'" in done.stderr


def test_the_inventory_lists_broken_folders_with_their_problem(tmp_path, capfd):
    models = tmp_path / "models"  # the working directory's models/ (tests run in tmp_path)
    save_tiny(models / "fine", "gpt2")
    for name, change in {"zero-vocab": {"vocab_size": 0}, "no-heads": {"n_head": None}}.items():
        written = json.loads((save_tiny(models / name, "gpt2") / "config.json").read_text()) | change
        (models / name / "config.json").write_text(json.dumps({k: v for k, v in written.items() if v is not None}))
    (models / "not-json").mkdir()
    (models / "not-json" / "config.json").write_text("{'model_type': 'gpt2'")
    (models / "not-causal").mkdir()
    (models / "not-causal" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert main(["models"]) == 0
    assert "Traceback" not in capfd.readouterr().err
    wide = io.StringIO()
    print_inventory(Console(file=wide, width=2000))
    rows = {line.split("│")[1].strip(): line for line in wide.getvalue().splitlines() if line.count("│") > 2}
    assert "random" in rows["fine"] and "gpt2" in rows["fine"]
    assert "vocab_size = 0 (at least 1)" in rows["zero-vocab"]
    assert "no n_head (heads" in rows["no-heads"]
    assert "not readable as JSON" in rows["not-json"]
    assert "no num_hidden_layers" in rows["not-causal"]


def test_a_hub_cache_that_is_a_file_is_one_line_in_the_inventory(tmp_path, capfd, monkeypatch):
    (tmp_path / "not-a-cache").write_text("")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "not-a-cache"))
    assert "cannot scan the Hugging Face cache (Scan cache expects a directory" in user_error(capfd, ["models"])
