"""The CPU adjustments for verl's Megatron actor (plugins/cpu/megatron/), on the pinned megatron-core and mbridge.

Each adjustment is applied here directly to its module (as the import hook does in a CPU-mode verl process) and then
exercised: the CUDA call it replaces fails on this CPU-only torch without it. The shape guards are checked on modules
that lack the shape.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("megatron.core", reason="install with scripts/install_cpu.sh --megatron")
pytest.importorskip("mbridge", reason="install with scripts/install_cpu.sh --megatron")

import torch  # noqa: E402
from gdpo_verl_plugins.cpu import megatron as cpu_megatron  # noqa: E402
from gdpo_verl_plugins.cpu.megatron import (  # noqa: E402
    attention_mask,
    device,
    mbridge_spec,
    optimizer_dtype,
    optimizer_load,
    rng,
    scoped_cuda,
)
from gdpo_verl_plugins.cpu.megatron.pins import ShapeChanged  # noqa: E402
from gdpo_verl_plugins.patching import is_patched  # noqa: E402

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only torch build")


@pytest.fixture(scope="module")
def patched():
    """Every adjustment applied to its module (idempotent: a second application changes nothing)."""
    for name, (module_name, _what) in cpu_megatron.PATCHES.items():
        module = importlib.import_module(module_name)
        cpu_megatron.APPLY[name](module)
        cpu_megatron.APPLY[name](module)
    return True


def test_every_patch_has_an_apply_function_and_a_real_module():
    assert set(cpu_megatron.PATCHES) == set(cpu_megatron.APPLY)
    for module_name, _what in cpu_megatron.PATCHES.values():
        assert importlib.util.find_spec(module_name) is not None, module_name


def test_cuda_tensors_land_on_cpu_in_the_listed_modules_only(patched):
    schedules = importlib.import_module("megatron.core.pipeline_parallel.schedules")
    assert schedules.torch.zeros([], dtype=torch.int, device="cuda").device.type == "cpu"
    assert schedules.torch.cuda.current_device() == torch.device("cpu")
    schedules.torch.cuda.synchronize()  # a no-op, not "Torch not compiled with CUDA enabled"
    utils = importlib.import_module("megatron.core.transformer.utils")
    mask = utils.get_default_causal_mask(4)
    assert mask.device.type == "cpu" and mask.tolist()[0] == [False, True, True, True]
    # torch itself is untouched
    with pytest.raises((AssertionError, RuntimeError)):
        torch.zeros(1, device="cuda")
    with pytest.raises((AssertionError, RuntimeError)):
        torch.cuda.current_device()


def test_cpu_device_mapping():
    assert device.cpu_device("cuda") == torch.device("cpu")
    assert device.cpu_device("cuda:1") == torch.device("cpu")
    assert device.cpu_device(torch.device("cuda", 0)) == torch.device("cpu")
    assert device.cpu_device(0) == torch.device("cpu")
    assert device.cpu_device("cpu") == "cpu" and device.cpu_device(None) is None


def test_tensor_parallel_rng_tracker_runs_on_the_cpu_generator(patched):
    random = importlib.import_module("megatron.core.tensor_parallel.random")
    random.model_parallel_cuda_manual_seed(123, tp_rank=1, ep_rank=0, etp_rank=0, force_reset_rng=True)
    tracker = random.get_cuda_rng_tracker()
    with tracker.fork():
        first = torch.rand(3)
    torch.manual_seed(123 + 2718 + 1)  # megatron's tensor-parallel seed for tp rank 1
    assert torch.equal(first, torch.rand(3))
    with tracker.fork():
        second = torch.rand(3)
    assert not torch.equal(first, second)  # the forked state advanced and was kept


def test_cuda_calls_stay_on_cpu_only_inside_the_scope():
    real_tensor, real_module = torch.Tensor.cuda, torch.nn.Module.cuda
    t, m = torch.ones(2), torch.nn.Linear(2, 2)
    with scoped_cuda.cuda_stays_on_cpu():
        with scoped_cuda.cuda_stays_on_cpu():  # re-entrant (get_model builds the model, which ties embeddings)
            assert t.cuda() is t and m.cuda(0) is m
        assert t.cuda() is t
    assert torch.Tensor.cuda is real_tensor and torch.nn.Module.cuda is real_module
    with pytest.raises(RuntimeError), scoped_cuda.cuda_stays_on_cpu():
        raise RuntimeError("boom")
    assert torch.Tensor.cuda is real_tensor  # restored on error too


def test_construction_calls_are_wrapped(patched):
    util = importlib.import_module("mbridge.core.util")
    lm = importlib.import_module("megatron.core.models.common.language_module.language_module")
    assert is_patched(util.get_model)
    assert is_patched(lm.LanguageModule.setup_embeddings_and_output_layer)


def test_mbridge_builds_the_local_layer_spec(tmp_path):
    module = _fake_module(
        tmp_path,
        "fake_llm_bridge",
        """
        asked = []

        def get_gpt_decoder_block_spec(config, use_transformer_engine=True, vp_stage=None):
            asked.append(use_transformer_engine)
            return "spec"

        class LLMBridge:
            def _get_transformer_layer_spec(self, vp_stage=None):
                return get_gpt_decoder_block_spec(None, use_transformer_engine=True, vp_stage=vp_stage)
        """,
    )
    mbridge_spec.patch_layer_spec(module)
    assert module.LLMBridge()._get_transformer_layer_spec() == "spec" and module.asked == [False]


def test_mbridge_layer_spec_patch_applies_to_the_pinned_mbridge(patched):
    llm_bridge = importlib.import_module(mbridge_spec.SPEC_MODULE)
    assert is_patched(llm_bridge.get_gpt_decoder_block_spec)


def test_qwen2_bridge_knows_the_local_norm_names(patched):
    bridge_mod = importlib.import_module("mbridge.core.bridge")
    qwen2 = importlib.import_module("mbridge.models.qwen2")
    bridge = qwen2.Qwen2Bridge.__new__(qwen2.Qwen2Bridge)
    assert bridge._weight_name_mapping_mcore_to_hf("decoder.layers.1.input_layernorm.weight") == [
        "model.layers.1.input_layernorm.weight"
    ]
    assert bridge._weight_name_mapping_mcore_to_hf("decoder.layers.0.pre_mlp_layernorm.weight") == [
        "model.layers.0.post_attention_layernorm.weight"
    ]
    # the fused (Transformer Engine) names still map, and the base class shared by every bridge is unchanged
    assert bridge._weight_name_mapping_mcore_to_hf("decoder.layers.0.mlp.linear_fc1.layer_norm_weight") == [
        "model.layers.0.post_attention_layernorm.weight"
    ]
    assert bridge_mod.Bridge._OTHER_MAPPING == {}
    assert "pre_mlp_layernorm.weight" not in bridge_mod.Bridge._MLP_MAPPING


def test_optimizer_dtype_checks_see_cuda_type_names_only_inside_the_call(tmp_path):
    assert optimizer_dtype.cuda_type_name(torch.zeros(1, dtype=torch.bfloat16)) == "torch.cuda.BFloat16Tensor"
    module = _fake_module(
        tmp_path,
        "fake_distrib_optimizer",
        """
        import torch

        seen = []

        class DistributedOptimizer:
            def __init__(self, optimizer, config=None):
                for group in optimizer.param_groups:
                    for model_param in group["params"]:
                        if model_param.type() in ['torch.cuda.HalfTensor', 'torch.cuda.BFloat16Tensor']:
                            seen.append(("16", model_param.type(torch.float32).dtype))
                        elif model_param.type() == 'torch.cuda.FloatTensor':
                            seen.append(("32", None))
                        else:
                            raise TypeError(model_param.type())
        """,
    )
    optimizer_dtype.patch(module)
    params = [torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16)), torch.nn.Parameter(torch.zeros(2))]
    module.DistributedOptimizer(torch.optim.SGD(params, lr=0.1))
    assert module.seen == [("16", torch.float32), ("32", None)]
    assert [p.type() for p in params] == ["torch.BFloat16Tensor", "torch.FloatTensor"]  # plain again


def test_gradient_clipping_accepts_cpu_gradients(patched):
    clip_grads = importlib.import_module("megatron.core.optimizer.clip_grads")
    optimizer = importlib.import_module("megatron.core.optimizer.optimizer")
    assert is_patched(optimizer.clip_grad_by_total_norm_fp32)  # the reference the optimizer calls
    assert is_patched(clip_grads.clip_grad_by_total_norm_fp32)
    param = torch.nn.Parameter(torch.ones(4))
    param.grad = torch.full((4,), 2.0)
    clip_grads.clip_grad_by_total_norm_fp32(iter([param]), max_norm=1.0, total_norm=4.0)
    assert torch.allclose(param.grad, torch.full((4,), 0.5), atol=1e-5)
    assert param.grad.type() == "torch.FloatTensor"


def test_two_dimensional_padding_mask_gives_way_to_the_causal_mask(patched):
    from megatron.core.transformer.enums import AttnMaskType
    from megatron.core.transformer.utils import attention_mask_func

    fused_softmax = importlib.import_module(attention_mask.MODULE)
    softmax = fused_softmax.FusedScaleMaskSoftmax(
        input_in_fp16=False,
        input_in_bf16=False,
        attn_mask_type=AttnMaskType.causal,
        scaled_masked_softmax_fusion=False,
        mask_func=attention_mask_func,
        softmax_in_fp32=True,
        scale=None,
    )
    scores = torch.randn(2, 3, 5, 5)
    padding = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)  # right padding, as verl leaves it
    probs = softmax(scores.clone(), padding)
    assert torch.allclose(probs, softmax(scores.clone(), None))
    assert torch.all(probs.triu(diagonal=1) == 0)  # causal
    # a 4-D mask is still applied as given
    full = torch.zeros(2, 1, 5, 5, dtype=torch.bool)
    full[..., 0] = True
    assert torch.all(softmax(scores.clone(), full)[..., 0] == 0)


def _fake_module(tmp_path, name: str, source: str):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # inspect finds a class's source through its module
    spec.loader.exec_module(module)
    return module


def test_a_module_without_the_cuda_call_stops_with_a_named_error(tmp_path):
    module = _fake_module(tmp_path, "moved_schedules", "import torch\n\ndef f():\n    return torch.zeros(1)\n")
    with pytest.raises(ShapeChanged, match=r"moved_schedules.*device=\\?\"cuda\\?\".*megatron-core==0\.16\.1"):
        device.swap_torch(module, 'device="cuda"')
    assert module.torch is torch  # nothing was swapped


def test_a_missing_rng_helper_stops_with_a_named_error(tmp_path):
    module = _fake_module(tmp_path, "moved_random", "import torch\n")
    with pytest.raises(ShapeChanged, match="moved_random._get_cuda_rng_state.*missing"):
        rng.patch(module)


def test_a_changed_signature_stops_with_a_named_error(tmp_path):
    module = _fake_module(
        tmp_path,
        "moved_softmax",
        """
        class AttnMaskType:
            causal = 1

        class FusedScaleMaskSoftmax:
            def forward_torch_softmax(self, scores, attention_mask):
                return scores
        """,
    )
    with pytest.raises(ShapeChanged, match=r"forward_torch_softmax.*signature lacks \['input', 'mask'\]"):
        attention_mask.patch(module)


def test_cpu_mode_registers_every_megatron_patch_and_off_registers_none():
    """In a fresh process: with GDPO_VERL_CPU=1 importing megatron modules applies the patches; without, nothing."""
    code = (
        "import gdpo_verl_plugins.cpu as c, importlib, torch;"
        "c.install();"
        "from gdpo_verl_plugins.cpu.megatron import device;"
        "m = importlib.import_module('megatron.core.pipeline_parallel.schedules');"
        "print(m.torch is device.CPU_TORCH)"
    )
    for flag, expected in (("1", "True"), ("0", "False")):
        env = {**os.environ, "GDPO_VERL_CPU": flag}
        out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == expected, (flag, out.stdout, out.stderr[-2000:])


def test_loading_into_a_fresh_torch_optimizer_creates_its_state_without_moving_parameters(patched):
    distrib = importlib.import_module(optimizer_load.MODULE)
    assert not distrib.HAVE_APEX_OR_TE and is_patched(distrib.DistributedOptimizer.sharded_state_dict)
    params = [torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2, 2))]
    before = [p.detach().clone() for p in params]
    inner = torch.optim.AdamW(params, lr=0.5, weight_decay=0.1)
    wrapper = distrib.DistributedOptimizer.__new__(distrib.DistributedOptimizer)
    wrapper.optimizer = inner
    optimizer_load.init_state_without_moving(wrapper)
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))  # nothing moved
    assert {s["step"].item() for s in inner.state.values()} == {1.0}  # megatron's state_dict finds one step
    assert inner.param_groups[0]["lr"] == 0.5 and inner.param_groups[0]["weight_decay"] == 0.1  # restored


def test_optimizer_load_patch_calls_the_initializer_only_when_loading_into_an_empty_optimizer(tmp_path):
    module = _fake_module(
        tmp_path,
        "fake_distrib_optimizer_load",
        """
        HAVE_APEX_OR_TE = False

        class DistributedOptimizer:
            def __init__(self, optimizer):
                self.optimizer, self.inits = optimizer, 0

            def _init_optimizer_states_with_dummy_values(self):
                self.inits += 1
                for p in self.optimizer.param_groups[0]["params"]:
                    self.optimizer.state[p] = {"step": 1}

            def state_dict(self):
                steps = list(set([s["step"] for s in self.optimizer.state.values()]))
                assert len(steps) == 1
                return {"step": steps[0]}

            def sharded_state_dict(self, model_sharded_state_dict=None, is_loading=False):
                return self.state_dict()
        """,
    )
    optimizer_load.patch(module)
    opt = module.DistributedOptimizer(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    with pytest.raises(AssertionError):
        opt.sharded_state_dict({}, is_loading=False)  # saving an optimizer without state is left as it was
    assert opt.sharded_state_dict({}, is_loading=True) == {"step": 1} and opt.inits == 1
    opt.sharded_state_dict({}, is_loading=True)
    assert opt.inits == 1  # state exists now: not initialized again
