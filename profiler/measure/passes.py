"""The passes that are timed, one function per phase, on a loaded model.

- ``prefill(n, batch=1)``: one pass over ``batch`` prompts of ``n`` tokens that builds the KV cache and
  returns the next-token logits, as generation does: logits of each sequence's last position only
  (``logits_to_keep=1``), since the LM head over every position is not part of generation.
- ``decode_step(cache)``: one token per sequence through the model with the cache it extends (as many
  sequences as the cache holds, or ``batch=``).
- ``extend(cache, s)``: ``s`` tokens appended to each sequence of ``cache`` in one pass, logits of the last
  position only: a prefill that continues a cached prefix (a prefill is an extend of an empty cache, a decode
  step an extend by one token).
- ``one_token_cache(batch=1)``: a fresh copy of the cache a one-token prefill of ``batch`` sequences builds (that
  prefill run once per batch size): what a filled cache starts from (``profiler.measure.cache_fill``).
- ``forward(n)``: a full pass over ``n`` tokens with no cache (``use_cache=False``), last
  position's logits: the paper's literal primitive, what each emitted token costs when
  nothing is cached.
- ``generate(n_in, n_out, batch=1)``: exactly ``n_out`` tokens for each of ``batch`` prompts of ``n_in``
  tokens, greedy: a prefill, then ``n_out - 1`` cached decode steps, each feeding back every sequence's
  argmax. This is generation itself, without ``generate()``'s logits processors and stopping checks
  (no EOS ends a sequence early; every sequence is as long as the others, so nothing is padded).
- ``generate_from(cache, tokens, n_out)``: the same after given token ids appended to a given cache (None: an
  empty one): one pass over them (an extend of a cache kept from earlier calls), then the decode steps; returns
  the cache and the tokens emitted (prefix reuse across calls, ``profiler.lba.execution``).

Prompt tokens are drawn uniformly from the vocabulary (seeded): cost does not depend on
which tokens they are. A batch's sequences are distinct (``tokens``): the first is the single
prompt, the others that prompt read cyclically from seeded offsets, so a batch costs no draw of
its own and sequence 0 of every batch is what a pass of one sequence reads. Every pass runs under
``torch.inference_mode``.

transformers renamed the cache argument and output field from ``past_key_values`` to
``cache`` during 5.x; the name is read off the model's ``forward`` signature once.
"""

from __future__ import annotations

import copy

import torch

from profiler.measure.loading import LoadedModel, cache_argument


def cache_batch(cache) -> int:
    """The sequences ``cache`` holds: the first dimension of its first layer's keys (or of the first tensor a
    layer holds, for a layer without keys: a linear-attention layer keeps its states in dicts; or of the first the
    cache keeps itself, in a list: MiniMax's ``linear_cache`` where no layer attends)."""
    for layer in cache.layers:
        keys = getattr(layer, "keys", None)
        if isinstance(keys, torch.Tensor) and keys.ndim:
            return int(keys.shape[0])
    for layer in cache.layers:
        for value in vars(layer).values():
            for tensor in value.values() if isinstance(value, dict) else (value,):
                if isinstance(tensor, torch.Tensor) and tensor.ndim:
                    return int(tensor.shape[0])
    for value in vars(cache).values():
        for tensor in value if isinstance(value, list) else (value,):
            if isinstance(tensor, torch.Tensor) and tensor.ndim:
                return int(tensor.shape[0])
    raise ValueError("the cache holds no tensor to read its batch from")


class Passes:
    def __init__(self, loaded: LoadedModel, seed: int = 0):
        self.model = loaded.model
        positions, vocab = loaded.architecture.max_positions, loaded.architecture.vocab
        gen = torch.Generator().manual_seed(seed)
        prompt = torch.randint(vocab, (1, positions), generator=gen)
        self.prompt = prompt.to(loaded.device)
        # where each sequence of a batch starts reading the prompt: 0 for the first, distinct for the next ones
        self._offsets = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(positions - 1, generator=gen)])
        self._vocab = vocab
        self._last_tokens: tuple[tuple[int, int], torch.Tensor] | None = None
        self._cache = cache_argument(self.model)
        self._one_token_caches: dict[int, object] = {}  # batch -> a one-token prefill's cache, copied when asked

    def tokens(self, batch: int, n: int) -> torch.Tensor:
        """``[batch, n]`` prompt tokens, on the model's device. Sequence ``i`` reads the prompt cyclically from
        the ``i``-th seeded offset (offset 0 for sequence 0: ``prompt[:, :n]``); past ``max_positions``
        sequences the offsets repeat and the tokens are shifted by ``i // max_positions`` (mod the vocabulary),
        so every sequence differs. The last batch asked is kept, so a repeated pass reads it again."""
        if batch < 1 or n < 1:
            raise ValueError(f"a batch of {batch} sequences of {n} tokens: both must be at least 1")
        if batch == 1:
            return self.prompt[:, :n]
        if self._last_tokens is not None and self._last_tokens[0] == (batch, n):
            return self._last_tokens[1]
        positions = self.prompt.shape[1]
        sequence = torch.arange(batch)
        starts = self._offsets[sequence % positions]
        index = (starts[:, None] + torch.arange(n)[None, :]) % positions
        shift = (sequence // positions)[:, None]
        tokens = (self.prompt[0, index.to(self.prompt.device)] + shift.to(self.prompt.device)) % self._vocab
        self._last_tokens = ((batch, n), tokens)
        return tokens

    @torch.inference_mode()
    def prefill(self, n: int, batch: int = 1):
        """The KV cache of ``batch`` prompts of ``n`` tokens (the next-token logits are computed and dropped)."""
        return self.model(self.tokens(batch, n), use_cache=True, logits_to_keep=1)[self._cache]

    def one_token_cache(self, batch: int = 1):
        """A fresh copy of the cache of a one-token prefill of ``batch`` prompts, that prefill run once per ``batch``:
        a fill starts from it (a copy took 1-2 ms where the prefill took 37 ms of gpt2 and 144 ms of Qwen2.5-0.5B on
        this 2-core CPU, and a decode point's every visit fills its cache again)."""
        if batch not in self._one_token_caches:
            self._one_token_caches[batch] = self.prefill(1, batch=batch)
        return copy.deepcopy(self._one_token_caches[batch])

    @torch.inference_mode()
    def decode_step(self, cache, batch: int | None = None):
        """One token appended to each sequence of ``cache`` (which grows by one); returns the cache. ``batch``:
        the sequences the cache holds (read off it when not given)."""
        tokens = self.tokens(batch or cache_batch(cache), 1)
        return self.model(tokens, use_cache=True, **{self._cache: cache})[self._cache]

    @torch.inference_mode()
    def extend(self, cache, s: int):
        """``s`` tokens appended to each sequence of ``cache`` (which grows by ``s``) in one pass; returns the cache.
        The tokens continue each sequence's prompt (``tokens``) after the ``c`` the cache holds, so an extend of a
        prefill's cache reads what a prefill of ``c + s`` tokens reads; the next-token logits are computed and
        dropped (``logits_to_keep=1``). ``c + s`` is at most ``max_positions``."""
        c = cache.get_seq_length()
        if s < 1 or c + s > self.prompt.shape[1]:
            raise ValueError(f"an extend of {s} tokens on a cache of {c}: at least 1, and at most "
                             f"{self.prompt.shape[1]} positions in all")
        tokens = self.tokens(cache_batch(cache), c + s)[:, c:]
        return self.model(tokens, use_cache=True, logits_to_keep=1, **{self._cache: cache})[self._cache]

    @torch.inference_mode()
    def generate_from(self, cache, tokens: torch.Tensor, n_out: int):
        """Emit ``n_out`` tokens greedily after ``tokens`` (``[batch, s]`` ids, ``s >= 1``) appended to ``cache`` (None:
        an empty one): one pass over them, logits of the last position only, then ``n_out - 1`` decode steps feeding
        back each sequence's argmax. Returns the final cache (the last token emitted is not in it) and the
        ``[batch, n_out]`` tokens emitted."""
        out = self.model(tokens.to(self.prompt.device), use_cache=True, logits_to_keep=1, **{self._cache: cache})
        emitted = [out.logits[:, -1:].argmax(-1)]
        for _ in range(n_out - 1):
            out = self.model(emitted[-1], use_cache=True, **{self._cache: out[self._cache]})
            emitted.append(out.logits[:, -1:].argmax(-1))
        return out[self._cache], torch.cat(emitted, dim=1)

    @torch.inference_mode()
    def forward(self, n: int) -> None:
        self.model(self.prompt[:, :n], use_cache=False, logits_to_keep=1)

    @torch.inference_mode()
    def generate(self, n_in: int, n_out: int, batch: int = 1):
        """Emit ``n_out`` tokens greedily after ``n_in`` for each of ``batch`` sequences; returns the final cache."""
        out = self.model(self.tokens(batch, n_in), use_cache=True, logits_to_keep=1)
        for _ in range(n_out - 1):
            token = out.logits[:, -1:].argmax(-1)
            out = self.model(token, use_cache=True, **{self._cache: out[self._cache]})
        out.logits[:, -1:].argmax(-1)
        return out[self._cache]
