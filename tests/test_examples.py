"""Every paper recipe in examples/ composes cleanly with verl's Hydra config, in its Megatron and FSDP2 variants and
under GDPO and GRPO; the GRPO switch changes only the estimator. Scripts are read via GDPO_VERL_CHECK_DUMP."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gdpo_verl.check.compose import Composer, dump_script

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*_*.sh"))
VARIANTS = {
    "gdpo-megatron": [],
    "gdpo-fsdp2": ["--fsdp2"],
    "grpo-megatron": ["--grpo"],
    "grpo-fsdp2": ["--grpo", "--fsdp2"],
}
# Overrides the GRPO switch may change; everything else must be identical.
ESTIMATOR_KEYS = (
    "algorithm.adv_estimator",
    "+algorithm.gdpo_reward_keys",
    "+algorithm.gdpo_reward_weights",
    "algorithm.filter_groups.metric",
    "trainer.experiment_name",
)
PAPER_RUNS = {  # script -> (model, reward names) from the paper
    "tool_qwen2_5_1_5b.sh": ("Qwen2.5-1.5B-Instruct", ["format", "correctness"]),
    "tool_qwen2_5_3b.sh": ("Qwen2.5-3B-Instruct", ["format", "correctness"]),
    "math_r1_distill_1_5b.sh": ("DeepSeek-R1-Distill-Qwen-1.5B", ["correct", "length"]),
    "math_r1_distill_7b.sh": ("DeepSeek-R1-Distill-Qwen-7B", ["correct", "length"]),
    "math_qwen3_4b.sh": ("Qwen3-4B-Instruct-2507", ["correct", "length"]),
    "math_r1_distill_7b_conditioned.sh": ("DeepSeek-R1-Distill-Qwen-7B", ["correct", "length"]),
    "code_r1_distill_7b_2rewards.sh": ("DeepSeek-R1-Distill-Qwen-7B", ["pass_rate", "length"]),
    "code_r1_distill_7b_3rewards.sh": ("DeepSeek-R1-Distill-Qwen-7B", ["pass_rate", "length", "bug_free"]),
    "gsm8k_qwen2_5_1_5b.sh": ("Qwen2.5-1.5B-Instruct", ["correct", "integer", "format"]),
}
CLEAN_ENV = ("ESTIMATOR", "BACKEND", "NNODES", "GPUS_PER_NODE", "MODEL_PATH", "ACTOR_TP", "ACTOR_PP", "ROLLOUT_TP")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)


def _dump(script: str, *args: str, **env: str) -> list[str]:
    return dump_script(str(EXAMPLES / script), list(args), env=env)


def _as_dict(args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in args)


def test_every_paper_run_has_a_script() -> None:
    assert sorted(PAPER_RUNS) == SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_grpo_switch_changes_only_the_estimator(script: str) -> None:
    gdpo, grpo = _as_dict(_dump(script)), _as_dict(_dump(script, "--grpo"))
    assert _as_dict(_dump(script, ESTIMATOR="grpo")) == grpo
    differ = {k for k in gdpo.keys() | grpo.keys() if gdpo.get(k) != grpo.get(k)}
    assert differ <= set(ESTIMATOR_KEYS), differ
    assert gdpo["algorithm.adv_estimator"] == "gdpo" and grpo["algorithm.adv_estimator"] == "grpo"
    model, names = PAPER_RUNS[script]
    assert gdpo["actor_rollout_ref.model.path"].endswith(model)
    assert gdpo["+algorithm.gdpo_reward_keys"] == f"[{','.join(names)}]"


@pytest.mark.parametrize("script", SCRIPTS)
def test_backend_variants(script: str) -> None:
    meg, fsdp = _as_dict(_dump(script)), _as_dict(_dump(script, "--fsdp2"))
    assert meg["model_engine"] == "megatron" and "actor_rollout_ref.actor.megatron.tensor_model_parallel_size" in meg
    assert fsdp["actor_rollout_ref.actor.strategy"] == "fsdp2" and "model_engine" not in fsdp
    assert meg["actor_rollout_ref.rollout.name"] == "vllm"


def test_env_and_overrides_reach_the_command_line() -> None:
    args = _dump(
        "math_r1_distill_7b.sh", "trainer.total_training_steps=3", NNODES="2", MODEL_PATH="/m/7b", ACTOR_TP="4"
    )
    d = _as_dict(args)
    assert d["trainer.nnodes"] == "2" and d["actor_rollout_ref.model.path"] == "/m/7b"
    assert d["actor_rollout_ref.actor.megatron.tensor_model_parallel_size"] == "4"
    assert args[-1] == "trainer.total_training_steps=3"  # user overrides come last and win


def test_launch_runs_main_ppo(tmp_path: Path) -> None:
    stub = tmp_path / "python3"
    # the launch goes to the stub; the recipe's choice of backend settings still runs the real interpreter
    stub.write_text(
        '#!/usr/bin/env bash\nif [[ $2 == gdpo_verl.check.choices ]]; then exec "$REAL_PYTHON" "$@"; fi\n'
        'printf "%s\\n" "$@" > "$STUB_OUT"\n'
    )
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "STUB_OUT": str(tmp_path / "argv")}
    env["REAL_PYTHON"] = sys.executable
    env.pop("GDPO_VERL_CHECK_DUMP", None)
    subprocess.run(["bash", str(EXAMPLES / "gsm8k_qwen2_5_1_5b.sh")], env=env, check=True, capture_output=True)
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"]
    assert argv[2:] == _dump("gsm8k_qwen2_5_1_5b.sh")


def test_bad_estimator_is_refused() -> None:
    with pytest.raises(RuntimeError, match="ESTIMATOR must be gdpo or grpo"):
        _dump("gsm8k_qwen2_5_1_5b.sh", ESTIMATOR="ppo")


# --- composed with verl's Hydra config through the checker ---------------------------------------------------------

needs_verl = pytest.mark.skipif(
    importlib.util.find_spec("verl") is None or importlib.util.find_spec("hydra") is None, reason="needs verl"
)


@pytest.fixture(scope="module")
def composer() -> Composer:
    return Composer()


@pytest.mark.verl
@needs_verl
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("script", SCRIPTS)
def test_script_passes_the_checker(script: str, variant: str, composer: Composer) -> None:
    pytest.importorskip("gdpo_verl.config")
    from gdpo_verl.check.cli import check_args
    from gdpo_verl.check.report import errors, render

    found = check_args(_dump(script, *VARIANTS[variant]), composer)
    # zero false alarms: no error, and no warning but "this backend is not installed here" (a CPU machine)
    assert not errors(found), render(found, f"{script} {variant}")
    assert all(f.topic == "install" for f in found if f.level == "warn"), render(found, f"{script} {variant}")
    text = "\n".join(f.message for f in found)
    assert "heads" in text and "from built-in table" in text  # head/KV divisibility was checked
    assert ("dynamic sampling on" in text) == script.startswith(("math", "code"))


@pytest.mark.verl
@needs_verl
def test_reward_setup_per_run(composer: Composer) -> None:
    from gdpo_verl.rewards.manager import parse_config

    def rewards(script: str) -> dict[str, object]:
        cfg = composer.compose(_dump(script)).cfg
        return {r.name: r for r in parse_config(cfg.reward.gdpo_multi).rewards}

    plain, cond = rewards("math_r1_distill_7b.sh"), rewards("math_r1_distill_7b_conditioned.sh")
    assert plain["length"].condition is None and cond["length"].condition.on == "correct"
    code2 = rewards("code_r1_distill_7b_2rewards.sh")
    assert list(code2) == ["pass_rate", "length"] and code2["length"].condition.on == "pass_rate"


@pytest.mark.verl
@needs_verl
def test_checker_catches_a_broken_recipe(composer: Composer) -> None:
    from gdpo_verl.check.cli import check_args
    from gdpo_verl.check.report import errors

    found = check_args(_dump("math_r1_distill_7b.sh", ACTOR_TP="8", ROLLOUT_TP="3"), composer)
    msgs = "\n".join(f.message for f in errors(found))
    assert "does not divide the 4 KV heads" in msgs and "does not divide the 28 attention heads" in msgs


# --- what the recipes carry --------------------------------------------------------------------------------------


@pytest.mark.verl
@needs_verl
@pytest.mark.parametrize("script", SCRIPTS)
def test_megatron_recomputes_activations(script: str, composer: Composer) -> None:
    meg = composer.compose(_dump(script)).cfg
    otc = meg.actor_rollout_ref.actor.megatron.override_transformer_config
    assert (otc.recompute_granularity, otc.recompute_method, otc.recompute_num_layers) == ("full", "uniform", 1)
    fsdp = composer.compose(_dump(script, "--fsdp2")).cfg
    assert fsdp.actor_rollout_ref.model.enable_gradient_checkpointing is True
    assert "actor_rollout_ref.model.enable_gradient_checkpointing" not in _as_dict(_dump(script))
    none = composer.compose(_dump(script, RECOMPUTE="none")).cfg
    assert none.actor_rollout_ref.actor.megatron.override_transformer_config.recompute_granularity is None


@pytest.mark.parametrize("script", SCRIPTS)
def test_megatron_keeps_at_least_four_data_parallel_ranks(script: str) -> None:
    d = _as_dict(_dump(script))
    tp = int(d["actor_rollout_ref.actor.megatron.tensor_model_parallel_size"])
    pp = int(d["actor_rollout_ref.actor.megatron.pipeline_model_parallel_size"])
    assert int(d["trainer.n_gpus_per_node"]) // (tp * pp) >= 4, (tp, pp)


@pytest.mark.parametrize("script", ["tool_qwen2_5_1_5b.sh", "tool_qwen2_5_3b.sh"])
def test_tool_recipes(script: str) -> None:
    d = _as_dict(_dump(script))
    assert d["actor_rollout_ref.actor.entropy_coeff"] == "0.001"
    # prepare_toolrl.py writes only the training file: validation defaults to a sample of it
    assert d["data.val_files"] == d["data.train_files"] and int(d["data.val_max_samples"]) > 0
    assert _as_dict(_dump(script, VAL_FILES="/bfcl.parquet"))["data.val_files"] == "/bfcl.parquet"
    # 4,000 rows, batch 512, verl's train loader drops the last partial batch, 15 epochs
    steps = 4000 // int(d["data.train_batch_size"]) * int(d["trainer.total_epochs"])
    assert steps == 105
    row = next(line for line in (ROOT / "docs" / "paper-runs.md").read_text().splitlines() if f"`{script}`" in line)
    assert "15 epochs (105)" in row


@pytest.mark.verl
@needs_verl
@pytest.mark.parametrize("backend", ["--megatron", "--fsdp2"])
def test_gsm8k_recipe(backend: str, composer: Composer) -> None:
    from gdpo_verl.rewards.manager import parse_config

    cfg = composer.compose(_dump("gsm8k_qwen2_5_1_5b.sh", backend)).cfg
    actor = cfg.actor_rollout_ref.actor
    assert actor.use_kl_loss is True and actor.kl_loss_coef == 0.04 and actor.kl_loss_type == "low_var_kl"
    assert actor.optim.lr_warmup_steps_ratio == 0.1
    schedule = actor.optim.lr_decay_style if backend == "--megatron" else actor.optim.lr_scheduler_type
    assert schedule == "cosine"
    fns = {r.name: r.fn for r in parse_config(cfg.reward.gdpo_multi).rewards}
    assert fns["correct"] == "gdpo_verl.rewards.gsm8k:correct_strict"


def test_gsm8k_strict_correct() -> None:
    from gdpo_verl.rewards import gsm8k

    assert gsm8k.correct_strict("<think>x</think>\n<answer>72</answer>", "#### 72") == 1.0
    assert gsm8k.correct_strict("the answer is 72", "#### 72") == 0.0  # no tag: not counted
    assert gsm8k.correct("the answer is 72", "#### 72") == 1.0  # the lenient one would count it
    assert gsm8k.correct_strict("<answer>71</answer>", "72") == 0.0


# --- mutation set: realistic mistakes on a shipped recipe, each must be caught -------------------------------------

BASE = "math_r1_distill_7b.sh"  # Megatron, DAPO, 1024 + 8000 tokens, KL loss (so a reference model)
OTC = "actor_rollout_ref.actor.megatron.override_transformer_config"
# (mistake, script arguments, environment, topic of the finding, level)
MUTATIONS: list[tuple[str, list[str], dict[str, str], str, str]] = [
    ("one response per prompt", ["actor_rollout_ref.rollout.n=1"], {}, "gdpo", "error"),
    (
        "actor token limit < one sequence",
        ["actor_rollout_ref.actor.ppo_max_token_len_per_gpu=8192"],
        {},
        "limits",
        "error",
    ),
    (
        "rollout log-prob limit too small",
        ["actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=4096"],
        {},
        "limits",
        "error",
    ),
    (
        "ref log-prob limit too small",
        ["actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=4096"],
        {},
        "limits",
        "error",
    ),
    ("vLLM max_model_len truncates", ["actor_rollout_ref.rollout.max_model_len=8192"], {}, "limits", "error"),
    ("estimator name typo", ["algorithm.adv_estimator=gdpo_vectorized"], {}, "estimator", "error"),
    ("gdpo_* key typo", ["+algorithm.gdpo_reward_weigths=[1.0,0.5]"], {}, "unknown-key", "error"),
    (
        "Megatron key on FSDP",
        ["--fsdp2", "actor_rollout_ref.actor.megatron.tensor_model_parallel_size=4"],
        {},
        "backend",
        "error",
    ),
    (
        "strategy=megatron without the engine",
        ["--fsdp2", "actor_rollout_ref.actor.strategy=megatron"],
        {},
        "backend",
        "error",
    ),
    ("no micro-batch without dynamic bsz", ["actor_rollout_ref.actor.use_dynamic_bsz=False"], {}, "batch", "error"),
    (
        "gradient checkpointing on Megatron",
        ["actor_rollout_ref.model.enable_gradient_checkpointing=True"],
        {"RECOMPUTE": "none"},
        "memory",
        "warn",
    ),
    ("trainer key typo", ["trainer.n_gpus_per_nod=8"], {}, "unknown-key", "error"),
    ("legacy reward key (ignored by 0.9.x)", ["reward_model.reward_manager=gdpo_multi"], {}, "legacy", "error"),
    ("TP 8 vs 4 KV heads", [], {"ACTOR_TP": "8"}, "parallel", "error"),
    ("vLLM TP does not divide heads", [], {"ROLLOUT_TP": "3"}, "parallel", "error"),
    ("reward keys vs manager", ["+algorithm.gdpo_reward_keys=[correct,format]"], {}, "reward", "error"),
    ("weights count", ["+algorithm.gdpo_reward_weights=[1.0]"], {}, "gdpo", "error"),
    ("missing '+' on a plugin key", ["algorithm.gdpo.batch_norm=token"], {}, "unknown-key", "error"),
    ("DAPO metric not emitted", ["algorithm.filter_groups.metric=seq_reward"], {}, "dapo", "error"),
    ("DAPO on the summed reward", ["algorithm.filter_groups.metric=reward"], {}, "dapo", "warn"),
    # legal in verl 0.9.1 (the V1 trainer pads to a multiple of mini-batch x n): a warning with the padding count
    ("mini-batch does not divide batch", ["actor_rollout_ref.actor.ppo_mini_batch_size=96"], {}, "padding", "warn"),
    ("mini-batch above the batch", ["actor_rollout_ref.actor.ppo_mini_batch_size=100000"], {}, "batch", "error"),
    ("verl built-in gdpo on V1", ["+algorithm.gdpo.impl=verl"], {}, "gdpo", "error"),
    # consequences (what the run would silently do)
    ("top_k=1 makes a group's responses identical", ["actor_rollout_ref.rollout.top_k=1"], {}, "sampling", "error"),
    ("save_freq=0 never saves", ["trainer.save_freq=0"], {}, "save", "warn"),
    ("12 GPUs pad every V1 batch", [], {"GPUS_PER_NODE": "12"}, "padding", "warn"),
    ("rollout cuts responses", ["actor_rollout_ref.rollout.response_length=2048"], {}, "truncation", "warn"),
    ("vLLM share too large for 7B", [], {"ROLLOUT_MEM": "0.85"}, "memory", "warn"),
]


@pytest.mark.verl
@needs_verl
def test_mutation_catch_rate(composer: Composer, capsys: pytest.CaptureFixture[str]) -> None:
    from gdpo_verl.check.cli import check_args

    clean = check_args(_dump(BASE), composer)
    assert not [f for f in clean if f.level == "error" or (f.level == "warn" and f.topic != "install")]
    missed = []
    for name, args, env, topic, level in MUTATIONS:
        found = check_args(_dump(BASE, *args, **env), composer)
        if not any(f.topic == topic and f.level == level for f in found):
            missed.append(f"{name}: {[(f.level, f.topic, f.message[:80]) for f in found if f.level != 'info']}")
    caught = len(MUTATIONS) - len(missed)
    with capsys.disabled():
        print(f"\ncheck catch rate on the mutation set: {caught}/{len(MUTATIONS)}")
    assert len(MUTATIONS) >= 12 and not missed, "\n".join(missed)
