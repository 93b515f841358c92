import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from profiler.measure.catalog import ModelSource, resolve_model
from profiler.measure.flops import count_flops, generate_flops, pass_flops
from profiler.measure.loading import load_model, meta_architecture
from profiler.measure.passes import Passes
from tests.conftest import save_tiny


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
