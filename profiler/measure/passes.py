"""The passes that are timed, one function per phase, on a loaded model.

- ``prefill(n)``: one pass over ``n`` prompt tokens that builds the KV cache and returns
  the next-token logits, as generation does: logits of the last position only
  (``logits_to_keep=1``), since the LM head over every position is not part of generation.
- ``decode_step(cache)``: one token through the model with the cache it extends.
- ``forward(n)``: a full pass over ``n`` tokens with no cache (``use_cache=False``), last
  position's logits: the paper's literal primitive, what each emitted token costs when
  nothing is cached.
- ``generate(n_in, n_out)``: exactly ``n_out`` tokens after ``n_in`` prompt tokens, greedy:
  a prefill, then ``n_out - 1`` cached decode steps, each feeding back the argmax. This
  is generation itself, without ``generate()``'s logits processors and stopping checks.

Prompt tokens are drawn uniformly from the vocabulary (seeded): cost does not depend on
which tokens they are. Every pass runs under ``torch.inference_mode``.

transformers renamed the cache argument and output field from ``past_key_values`` to
``cache`` during 5.x; the name is read off the model's ``forward`` signature once.
"""

from __future__ import annotations

import inspect

import torch

from profiler.measure.loading import LoadedModel


class Passes:
    def __init__(self, loaded: LoadedModel, seed: int = 0):
        self.model = loaded.model
        gen = torch.Generator().manual_seed(seed)
        prompt = torch.randint(loaded.architecture.vocab, (1, loaded.architecture.max_positions), generator=gen)
        self.prompt = prompt.to(loaded.device)
        forward_params = inspect.signature(self.model.forward).parameters
        self._cache = "cache" if "cache" in forward_params else "past_key_values"

    @torch.inference_mode()
    def prefill(self, n: int):
        """The KV cache of ``n`` prompt tokens (the next-token logits are computed and dropped)."""
        return self.model(self.prompt[:, :n], use_cache=True, logits_to_keep=1)[self._cache]

    @torch.inference_mode()
    def decode_step(self, cache):
        """One token appended to ``cache`` (which grows by one); returns the cache."""
        return self.model(self.prompt[:, :1], use_cache=True, **{self._cache: cache})[self._cache]

    @torch.inference_mode()
    def forward(self, n: int) -> None:
        self.model(self.prompt[:, :n], use_cache=False, logits_to_keep=1)

    @torch.inference_mode()
    def generate(self, n_in: int, n_out: int):
        """Emit ``n_out`` tokens greedily after ``n_in``; returns the final cache."""
        out = self.model(self.prompt[:, :n_in], use_cache=True, logits_to_keep=1)
        for _ in range(n_out - 1):
            token = out.logits[:, -1:].argmax(-1)
            out = self.model(token, use_cache=True, **{self._cache: out[self._cache]})
        out.logits[:, -1:].argmax(-1)
        return out[self._cache]
