"""A composite model's language model: the part of it that a text call runs.

Vision-language checkpoints (Gemma-3 from 4B up, Llama-4, Mistral-3, Llava, PaliGemma, Qwen3.5 ...)
write their language model's numbers under ``text_config`` in config.json, beside an encoder's
(``vision_config``, ``audio_config``). A call with text alone runs the language model only: the
encoder's work is the cost of an image or a sound, which this tool does not measure. So the
model built and measured is the language model of ``text_config``, as transformers builds it
alone (Gemma-3's ``Gemma3ForCausalLM``), its output matrix tied to its embedding where the whole model's
is (the whole model says so, Mistral-3's ``text_config`` does not), and the run says so
(``part_measured``). A language model transformers does not build alone (Qwen2.5-VL's, Qwen3-VL's:
no causal-LM class of their text configs) is refused in one line, as any model it cannot build.

Its weights are random even where the folder has safetensors: those are the composite model's,
named under its own prefixes, and a language model built alone does not read them. Cost does not
depend on weight values (a mixture of experts' routing aside, as for every random-weight model).
"""

from __future__ import annotations

import copy

NESTED = "text_config"


def language_model(config, written: dict, has_weights: bool) -> tuple[object, dict, str | None]:
    """``(config, written, part_measured)`` of the model to build from the transformers ``config``: ``config``
    itself, its config.json dict ``written`` and None, or for a composite model its ``text_config``, that
    config's own dict in config.json ({} where it is not one) and the sentence that says what is measured and
    what is not (``has_weights``: the folder holds safetensors, which are not read)."""
    from transformers import PretrainedConfig

    nested = getattr(config, NESTED, None)
    if not isinstance(nested, PretrainedConfig) or nested is config:
        return config, written, None
    others = sorted(name for name in getattr(config, "sub_configs", {}) if name != NESTED)
    left_out = f"; its {', '.join(others)} {'is' if len(others) == 1 else 'are'} not measured" if others else ""
    weights = " (the folder's are the whole model's, not read)" if has_weights else ""
    part = (f"the language model of a {type(config).__name__} alone ({NESTED}, a {type(nested).__name__}), "
            f"with random weights{weights}: "
            f"a text call runs it alone{left_out}")
    nested_written = written.get(NESTED)
    language = copy.deepcopy(nested)
    if hasattr(config, "tie_word_embeddings"):  # the whole model's output matrix is its own, tied as it says
        language.tie_word_embeddings = config.tie_word_embeddings
    return language, nested_written if isinstance(nested_written, dict) else {}, part
