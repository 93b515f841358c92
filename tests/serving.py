"""A real OpenAI-compatible server for the tests: ``transformers serve`` on the loopback address, over a tiny
random-weight model saved locally with a word-level tokenizer (every word one token), started and stopped by the
test by its process id. No mock: the requests, the streams and the usage counts are the server's own.

``served_model(root)`` is a context manager giving a ``Served`` (base URL, model name, process id, log file);
``tiny_served_folder(folder)`` saves the model the server loads (safetensors weights, tokenizer, config).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

# The tokenizer's words: every one a single token; a word it does not know is one token too (<unk>).
WORDS = ("the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be", "at", "by",
         "this", "had", "not", "are", "but", "from", "or", "have", "an", "they", "which", "one", "you", "were")
SERVED_MAX_POSITIONS = 512
START_S = 120.0  # start-up on a busy two-core machine: importing torch, transformers and FastAPI, loading the model


def tiny_served_folder(folder: Path) -> Path:
    """A 2-layer, 64-wide GPT-2 with random weights (seeded) and a word-level tokenizer, saved as a local HF
    folder (safetensors) that ``transformers serve`` loads."""
    import torch
    from tokenizers import Tokenizer, decoders
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocabulary = ("<unk>", "<eos>") + WORDS + tuple(f"w{i}" for i in range(256 - 2 - len(WORDS)))
    tokenizer = Tokenizer(WordLevel({word: i for i, word in enumerate(vocabulary)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##")  # words joined by spaces
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", eos_token="<eos>").save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=SERVED_MAX_POSITIONS, vocab_size=len(vocabulary),
                        bos_token_id=1, eos_token_id=1)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():  # <unk> and <eos> never the likeliest (their logits 0): every token streams as a word
        model.transformer.wte.weight[:2] = 0.0
    model.save_pretrained(folder)
    return folder


@dataclass(frozen=True)
class Served:
    """A running server: its OpenAI base URL (``http://127.0.0.1:PORT/v1``), the model name it serves, its
    process id and the file its output goes to."""

    url: str
    model: str
    pid: int
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(base: str, process: subprocess.Popen, log: Path, deadline_s: float = START_S) -> None:
    """Until ``base``/health answers 200; an exited process or the deadline fails with the log's tail."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx2.get(f"{base}/health", timeout=2.0).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not healthy within {deadline_s:.0f} s: {log.read_text()[-2000:]}")


def stop(pid: int, process: subprocess.Popen) -> None:
    """SIGTERM to the process by its id, then SIGKILL if it has not exited within 10 s."""
    if process.poll() is None:
        os.kill(pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            process.wait()


@contextmanager
def served_model(root: Path, extra_args: tuple[str, ...] = (), by_name: bool = False):
    """``transformers serve`` of ``tiny_served_folder(root / "served")`` on a free loopback port, on the CPU, one
    torch thread; yields a ``Served``, stops the process by its id on exit. The model is served under its folder's
    path; with ``by_name``, under ``served`` alone (the server started in ``root``): a name that means nothing to a
    client working elsewhere, as a hosted model's."""
    folder = root / "served"
    if not (folder / "config.json").exists():
        tiny_served_folder(folder)
    port = free_port()
    log = root / f"serve-{port}.log"
    name = folder.name if by_name else str(folder)
    command = [str(Path(sys.executable).parent / "transformers"), "serve", name, "--host", "127.0.0.1",
               "--port", str(port), "--device", "cpu", *extra_args]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment,
                                   cwd=root if by_name else None)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log)
        yield Served(url=f"http://127.0.0.1:{port}/v1", model=name, pid=process.pid, log=log)
    finally:
        stop(process.pid, process)
