"""Prompts of an exact token count on a server whose tokenizer we cannot see, calibrated by its own ``usage``.

A prompt is random words joined by spaces, each word verified to count one token where it stands by the server's
``usage.prompt_tokens``; ``overhead_tokens`` is what the server adds (a BOS token, a template), so a prompt of
``k`` words counts ``k + overhead_tokens``. Common English words with a leading space are one token in the
tokenizers of GPT-2, Llama, Mistral, Qwen and Gemma; single letters are the fallback list.

Calibration (every probe ``max_tokens=1``: 10 a list tried, at most 20): for a
candidate list, each of its words alone gives ``overhead + its first-position count``; the words
with the least count are kept (so the overhead counts a word at the start as one token); then the kept words
twice over must count ``overhead + 2k`` (every word one token after a space), and a random prompt of the shape
must count what it was built to (no merge across words). The first list that passes is the shape.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from profiler.errors import UserError

CANDIDATE_LISTS = (
    ("the", "of", "and", "to", "in", "is", "that", "for"),
    ("a", "b", "c", "d", "e", "f", "g", "h"),
)
MIN_WORDS = 4  # fewer one-token words than this: the list fails (prompts would repeat too often)
_CHECK_WORDS = 24  # words in the final check's random prompt


@dataclass(frozen=True)
class PromptShape:
    """Words that each count one token on the server, and the tokens the server adds to any prompt."""

    words: tuple[str, ...]
    overhead_tokens: int

    def prompt(self, n_tokens: int, rng: random.Random) -> str:
        """A prompt of exactly ``n_tokens`` by the server's count: random words from the first on, so two
        prompts share no prefix a server could cache (beyond a word or two by chance)."""
        n_words = n_tokens - self.overhead_tokens
        if n_words < 1:
            raise UserError(f"a prompt of {n_tokens} tokens is too short for this server: it adds "
                            f"{self.overhead_tokens} tokens of its own, so the least is {self.overhead_tokens + 1}")
        return " ".join(rng.choice(self.words) for _ in range(n_words))


def calibrate(client) -> PromptShape:
    """The first candidate list whose words the server counts one token each (see the module's docstring);
    ``client`` an ``EndpointClient``. UserError (one line) when the server reports no usage or no list passes."""
    rng = random.Random(0)
    for candidates in CANDIDATE_LISTS:
        counts = {word: _prompt_tokens(client, word) for word in candidates}
        least = min(counts.values())
        kept = tuple(word for word in candidates if counts[word] == least)
        if len(kept) < MIN_WORDS:
            continue
        shape = PromptShape(words=kept, overhead_tokens=least - 1)
        twice = " ".join(kept + kept)
        if _prompt_tokens(client, twice) != shape.overhead_tokens + 2 * len(kept):
            continue
        n_check = shape.overhead_tokens + _CHECK_WORDS
        if _prompt_tokens(client, shape.prompt(n_check, rng)) == n_check:
            return shape
    raise UserError(f"{client.endpoint.url}: no candidate word list counts one token a word on this server "
                    "(prompts of exact length cannot be built)")


def _prompt_tokens(client, prompt: str) -> int:
    tokens = client.complete(prompt, 1).prompt_tokens
    if tokens is None:
        raise UserError(f"{client.endpoint.url}: the server reports no usage.prompt_tokens in its stream, so "
                        "prompt lengths cannot be checked")
    return tokens
