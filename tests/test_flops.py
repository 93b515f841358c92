import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from profiler.measure.catalog import ModelSource, resolve_model
from profiler.measure.flops import count_flops, generate_flops, pass_flops
from profiler.measure.loading import load_model, meta_architecture
from profiler.measure.passes import Passes
from tests.conftest import save_tiny
from tests.families import save_lfm2

# what the formula leaves out: the rotary angle matmul some transformers versions count (d_h per token)
ROTARY_REL = 1e-3


def test_counted_equals_analytic_for_every_phase(tiny_loaded):
    arch, passes = tiny_loaded.architecture, Passes(tiny_loaded)
    cache, prefill = count_flops(lambda: passes.prefill(40))
    assert prefill == pytest.approx(pass_flops(arch, 40, 40), rel=ROTARY_REL)
    _, decode = count_flops(lambda: passes.decode_step(cache))
    assert decode == pytest.approx(pass_flops(arch, 1, 41), rel=ROTARY_REL)
    _, forward = count_flops(lambda: passes.forward(40))
    assert forward == pytest.approx(pass_flops(arch, 40, 40), rel=ROTARY_REL)
    _, generate = count_flops(lambda: passes.generate(20, 5))
    assert generate == pytest.approx(generate_flops(arch, 20, 5), rel=ROTARY_REL)


def test_eager_attention_counts_the_same_without_any_help(tmp_path, tiny_kind):
    """The eager path multiplies Q, K and V with plain matmuls, which torch counts itself:
    an independent check of the formula's attention term (the SDPA path uses our formula)."""
    folder = save_tiny(tmp_path / "eager", tiny_kind)
    loaded = load_model(ModelSource("eager", folder, "local"), torch.device("cpu"), torch.float32,
                        attn_implementation="eager")
    assert loaded.attn_implementation == "eager"
    with torch.inference_mode(), FlopCounterMode(display=False) as plain:
        Passes(loaded).forward(64)
    assert plain.get_total_flops() == pytest.approx(pass_flops(loaded.architecture, 64, 64), rel=ROTARY_REL)


def test_cpu_attention_kernel_is_counted(tiny_loaded):
    """Plain FlopCounterMode misses the CPU SDPA kernel; ours must not."""
    arch, passes = tiny_loaded.architecture, Passes(tiny_loaded)
    attention = arch.layers * 4 * arch.heads * 64 * 64 * arch.head_dim
    with torch.inference_mode(), FlopCounterMode(display=False) as plain:
        passes.forward(64)
    _, ours = count_flops(lambda: passes.forward(64))
    assert ours - plain.get_total_flops() == pytest.approx(attention, rel=ROTARY_REL)


def test_gpt2_all_position_logits_is_the_292_gflop_the_issue_quotes():
    arch = meta_architecture(resolve_model("gpt2"))
    assert pass_flops(arch, 1024, 1024, logits_positions=1024) == pytest.approx(292e9, rel=0.01)
    # keeping only the last position's logits removes about 30% of the work
    lm_head_share = 1 - pass_flops(arch, 1024, 1024) / pass_flops(arch, 1024, 1024, logits_positions=1024)
    assert 0.25 < lm_head_share < 0.30


def test_decode_cost_grows_linearly_in_context():
    arch = meta_architecture(resolve_model("smollm2-135m"))
    per_token = pass_flops(arch, 1, 2001) - pass_flops(arch, 1, 2000)
    assert per_token == 4 * arch.layers * arch.heads * arch.head_dim


# -- what torch's counter misses: grouped expert matmuls ---------------------------------------------


def test_grouped_matmul_counts_each_row_against_its_own_group():
    """torch has no formula for aten._grouped_mm (transformers' experts): ours counts what a loop of mm does."""
    tokens, experts = torch.randn(10, 8), torch.randn(3, 8, 4)  # rows of 16-byte multiples, as the kernel needs
    offsets = torch.tensor([4, 4, 10], dtype=torch.int32)  # rows 0-3 to expert 0, none to 1, 4-9 to 2
    out, counted = count_flops(lambda: torch.nn.functional.grouped_mm(tokens, experts, offs=offsets))
    assert counted == 2 * 10 * 8 * 4
    with FlopCounterMode(display=False) as plain:
        looped = torch.cat([tokens[:4] @ experts[0], tokens[4:] @ experts[2]])
    assert counted == plain.get_total_flops()
    assert torch.allclose(out, looped, atol=1e-5)
    with FlopCounterMode(display=False) as plain:
        torch.nn.functional.grouped_mm(tokens, experts, offs=offsets)
    assert plain.get_total_flops() == 0  # the gap this module fills


def test_transformers_grouped_matmul_fallback_is_counted():
    """The custom op transformers falls back to (older torch, CPU tensors off 16-byte alignment) hides its
    matmuls from the counter; its formula counts them."""
    import transformers.integrations.moe  # noqa: F401  (registers the op)

    tokens, experts = torch.randn(6, 8), torch.randn(2, 8, 4)
    offsets = torch.tensor([2, 6], dtype=torch.int32)
    _, counted = count_flops(lambda: torch.ops.transformers.grouped_mm_fallback(tokens, experts, offsets))
    assert counted == 2 * 6 * 8 * 4


def test_the_experts_of_a_mixture_are_counted_as_routed(tmp_path):
    """Mixtral (4 experts, 2 per token): plain FlopCounterMode misses exactly the routed experts (and the CPU
    attention kernel), which the formula counts as each token's 2 experts (not all 4)."""
    from tests.families import save_family

    loaded = load_model(ModelSource("mixtral", save_family(tmp_path / "mixtral", "mixtral"), "local"),
                        torch.device("cpu"), torch.float32)
    arch, passes = loaded.architecture, Passes(loaded)
    assert (arch.experts.count, arch.experts.per_token) == (4, 2)
    _, ours = count_flops(lambda: passes.forward(64))
    assert ours == pytest.approx(pass_flops(arch, 64, 64), rel=ROTARY_REL)
    with torch.inference_mode(), FlopCounterMode(display=False) as plain:
        passes.forward(64)
    routed = arch.layers * 2 * 64 * 2 * arch.hidden * arch.experts.ffn * 3
    attention = arch.layers * 4 * arch.heads * 64 * 64 * arch.head_dim
    assert ours - plain.get_total_flops() == routed + attention


def test_a_sliding_window_caps_the_keys_a_cached_pass_attends_to(tmp_path):
    """Mistral, window 32 on both layers: its cache keeps 31 tokens, so a decode step's attention costs the
    same at any context past the window; a pass without a cache still multiplies every query by every key."""
    from tests.families import SLIDING_WINDOW, save_family

    arch = meta_architecture(ModelSource("mistral", save_family(tmp_path / "mistral", "mistral"), "local"))
    assert arch.windows == (SLIDING_WINDOW, SLIDING_WINDOW)
    assert pass_flops(arch, 1, 500) == pass_flops(arch, 1, 100) == pass_flops(arch, 1, SLIDING_WINDOW)
    assert pass_flops(arch, 1, SLIDING_WINDOW) > pass_flops(arch, 1, SLIDING_WINDOW - 1)
    dense = pass_flops(arch, 200, 200) - pass_flops(arch, 100, 100)
    per_token = pass_flops(arch, 2, 2) - pass_flops(arch, 1, 1)
    assert dense > 100 * per_token  # quadratic: the n x n scores are all computed


def test_a_model_with_a_kernel_layer_handed_its_weight_is_counted(tmp_path):
    """LFM2's convolution runs in a kernel layer given the convolution's weight as an input: FlopCounterMode's module
    tracker would hook that weight's gradient, and fail in inference mode, were the loaded parameters asking for one."""
    loaded = load_model(ModelSource("lfm2", save_lfm2(tmp_path / "lfm2"), "local"), torch.device("cpu"), torch.float32)
    assert not any(parameter.requires_grad for parameter in loaded.model.parameters())
    cache, flops = count_flops(lambda: Passes(loaded).prefill(16))
    assert cache.get_seq_length() == 16 and flops > 0
