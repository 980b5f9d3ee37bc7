"""`gdpo-verl check`: every class of problem is caught, a good config passes. Composes verl's real Hydra config."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from gdpo_verl.check.report import Finding, errors, render
from gdpo_verl.check.rewards import _fallback_names

pytest.importorskip("hydra")
pytest.importorskip("gdpo_verl.config")
if importlib.util.find_spec("verl") is None:
    pytest.skip("verl is not installed", allow_module_level=True)

from gdpo_verl.check.cli import check_args  # noqa: E402
from gdpo_verl.check.compose import Composer  # noqa: E402

pytestmark = pytest.mark.verl

GOOD = [
    "actor_rollout_ref.rollout.name=vllm",
    "actor_rollout_ref.rollout.tensor_model_parallel_size=2",
    "data.train_batch_size=16",
    "actor_rollout_ref.actor.ppo_mini_batch_size=8",
    "actor_rollout_ref.actor.use_dynamic_bsz=True",
    "actor_rollout_ref.rollout.n=4",
    "algorithm.adv_estimator=gdpo",
    "+algorithm.gdpo_reward_keys=[correct,length]",
    "+algorithm.gdpo_reward_weights=[1.0,0.5]",
    "reward.reward_manager.name=gdpo_multi",
    "+reward.gdpo_multi.suite=math",
]


@pytest.fixture(scope="module")
def composer() -> Composer:
    return Composer()


@pytest.fixture()
def tiny_model(tmp_path: Path) -> str:
    """A Qwen2-1.5B-like shape: 12 heads, 2 KV heads, 28 layers."""
    (tmp_path / "config.json").write_text(
        json.dumps({"num_attention_heads": 12, "num_key_value_heads": 2, "num_hidden_layers": 28})
    )
    return str(tmp_path)


def _errors(found: list[Finding], topic: str) -> list[str]:
    return [f.message for f in errors(found) if f.topic == topic]


def _replace(args: list[str], **new: str) -> list[str]:
    """GOOD with the overrides whose key ends with a given name replaced (key=value given as name=value)."""
    out = [a for a in args if a.split("=", 1)[0].lstrip("+").rsplit(".", 1)[-1] not in new]
    return out + list(new.values())


def test_good_config_passes(composer: Composer, tiny_model: str) -> None:
    found = check_args(GOOD, composer, model_config=tiny_model)
    assert not errors(found), render(found, "good")
    text = render(found, "good")
    assert "V1 trainer" in text and "12 heads, 2 KV heads" in text and "OK:" in text


def test_typo_key_gets_a_suggestion(composer: Composer) -> None:
    typos = ["trainer.n_gpus_per_nod=8", "actor_rollout_ref.actor.tensor_model_parallel_size=2"]
    found = check_args([*GOOD, "model_engine=megatron", *typos], composer)
    msgs = _errors(found, "unknown-key")
    assert len(msgs) == 2, msgs  # both reported in one run
    assert "did you mean trainer.n_gpus_per_node" in msgs[0]
    assert "actor_rollout_ref.actor.megatron.tensor_model_parallel_size" in msgs[1]


def test_missing_plus_and_extra_plus(composer: Composer) -> None:
    found = check_args([*GOOD, "algorithm.gdpo.batch_norm=token", "+trainer.nnodes=1"], composer)
    msgs = [f.message for f in errors(found)]
    assert any("leading '+': +algorithm.gdpo.batch_norm=token" in m for m in msgs), msgs
    assert any("drop the leading '+'" in m for m in msgs), msgs


def test_bad_group_option_and_syntax(composer: Composer) -> None:
    found = check_args([*GOOD, "model_engine=megatrn", "trainer.logger=[console"], composer)
    msgs = [f.message for f in errors(found)]
    assert any("available: dp, megatron" in m for m in msgs), msgs
    assert any("not a valid Hydra override" in m for m in msgs), msgs


def test_weight_count_mismatch(composer: Composer) -> None:
    found = check_args(_replace(GOOD, gdpo_reward_weights="+algorithm.gdpo_reward_weights=[1.0]"), composer)
    assert any("one weight per key" in m for m in _errors(found, "gdpo")), render(found, "")


def test_reward_keys_vs_manager_names(composer: Composer) -> None:
    found = check_args(_replace(GOOD, gdpo_reward_keys="+algorithm.gdpo_reward_keys=[correct,format]"), composer)
    msgs = _errors(found, "reward")
    assert msgs and "['format']" in msgs[0] and "['length']" in msgs[0], msgs


def test_invalid_manager_section(composer: Composer) -> None:
    found = check_args([*GOOD, "+reward.gdpo_multi.rewards=[{name:extra}]"], composer)
    assert any("'fn' is required" in m for m in _errors(found, "reward")), render(found, "")


def _warnings(found: list[Finding], topic: str) -> list[str]:
    return [f.message for f in found if f.level == "warn" and f.topic == topic]


def test_filter_groups_metric_signature_recommended(composer: Composer) -> None:
    dapo = [*GOOD, "algorithm.filter_groups.enable=True"]
    found = check_args([*dapo, "algorithm.filter_groups.metric=seq_reward"], composer)
    assert any("not emitted" in m for m in _errors(found, "dapo")), render(found, "")
    found = check_args([*dapo, "algorithm.filter_groups.metric=gdpo_signature"], composer)
    assert not errors(found) and not _warnings(found, "dapo")
    # the paper's own choice: allowed, with a warning that explains what it drops and recommends gdpo_signature
    found = check_args([*dapo, "algorithm.filter_groups.metric=reward"], composer)
    assert not errors(found), render(found, "")
    msgs = _warnings(found, "dapo")
    assert len(msgs) == 1 and "components vary but whose total is constant" in msgs[0] and "gdpo_signature" in msgs[0]
    # GRPO on the summed reward may filter on it
    grpo = _replace(dapo, adv_estimator="algorithm.adv_estimator=grpo")
    assert not errors(check_args([*grpo, "algorithm.filter_groups.metric=reward"], composer))


def test_filter_groups_ignored_by_legacy_trainer(composer: Composer) -> None:
    args = [*GOOD, "algorithm.filter_groups.enable=True", "algorithm.filter_groups.metric=gdpo_signature"]
    found = check_args([*args, "trainer.use_v1=False"], composer)
    assert any("legacy RayPPOTrainer" in f.message for f in found)
    assert any(f.level == "warn" and f.topic == "dapo" for f in found)


def test_parallel_sizes_vs_heads_and_gpus(composer: Composer, tiny_model: str) -> None:
    args = [
        *GOOD,
        "model_engine=megatron",
        "actor_rollout_ref.actor.megatron.tensor_model_parallel_size=4",
        "actor_rollout_ref.actor.megatron.pipeline_model_parallel_size=3",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=8",
    ]
    msgs = _errors(check_args(args, composer, model_config=tiny_model), "parallel")
    text = "\n".join(msgs)
    assert "does not divide the 2 KV heads" in text  # Megatron TP 4 vs 2 query groups
    assert "does not divide the 8 GPUs" in text  # TP 4 x PP 3 = 12
    assert "28 layers do not split evenly" in text  # PP 3
    assert "rollout.tensor_model_parallel_size=8 does not divide the 12 attention heads" in text
    # without a model config only the GPU count is checked
    msgs = _errors(check_args(args, composer), "parallel")
    assert msgs and all("heads" not in m for m in msgs)


def test_model_config_from_local_model_path(composer: Composer, tiny_model: str) -> None:
    args = [
        *GOOD,
        f"actor_rollout_ref.model.path={tiny_model}",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=8",
    ]
    assert any("12 attention heads" in m for m in _errors(check_args(args, composer), "parallel"))


def test_legacy_keys(composer: Composer) -> None:
    args = [*GOOD, "reward_model.reward_manager=gdpo_multi", "custom_reward_function.path=/tmp/r.py"]
    msgs = _errors(check_args(args, composer), "legacy")
    assert len(msgs) == 2
    assert "use reward.reward_manager.name" in msgs[0] and "use reward.custom_reward_function.path" in msgs[1]


def test_kl_in_reward(composer: Composer) -> None:
    kl = [*GOOD, "algorithm.use_kl_in_reward=True"]
    assert any(f.topic == "kl" and "not dropped" in f.message for f in check_args(kl, composer))
    found = check_args([*kl, "+algorithm.gdpo.kl_in_reward=error"], composer)
    assert any("refuses to drop the KL" in m for m in _errors(found, "gdpo"))
    found = check_args([*kl, "+algorithm.gdpo.impl=verl"], composer)
    assert _errors(found, "kl") and _errors(found, "gdpo")  # built-in drops KL and fails on V1


def test_rollout_name_required(composer: Composer) -> None:
    found = check_args([a for a in GOOD if not a.startswith("actor_rollout_ref.rollout.name")], composer)
    assert _errors(found, "rollout")


def test_cli_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from gdpo_verl.cli import main

    assert main(["check", "-q", "--", *GOOD]) == 0
    assert "OK: 0 error(s)" in capsys.readouterr().out
    assert main(["check", "--", *GOOD, "trainer.n_gpus_per_nod=8"]) == 1
    assert "FAIL" in capsys.readouterr().out
    bad = tmp_path / "bad.sh"
    bad.write_text("exit 3\n")
    assert main(["check", "--script", str(bad)]) == 2


def test_fallback_reward_names() -> None:
    assert _fallback_names({"suite": "gsm8k"}) == ["correct", "integer", "format"]
    assert _fallback_names({"suite": "math", "rewards": [{"name": "length"}, {"name": "extra"}]})[-1] == "extra"


def test_gdpo_without_reward_keys_says_what_the_estimator_says(composer: Composer) -> None:
    from gdpo_verl.config import missing_reward_keys_message

    args = [a for a in GOOD if "gdpo_reward_" not in a]
    assert _errors(check_args(args, composer), "gdpo") == [missing_reward_keys_message()]


def test_misspelled_top_level_gdpo_key_gets_a_suggestion(composer: Composer) -> None:
    args = [a for a in GOOD if "gdpo_reward_weights" not in a] + ["+algorithm.gdpo_reward_weigths=[1.0,0.5]"]
    found = check_args(args, composer)
    (message,) = _errors(found, "unknown-key")
    assert "did you mean 'algorithm.gdpo_reward_weights'" in message
    assert not _errors(found, "gdpo")  # reported once


def test_rollout_n_below_two_with_gdpo(composer: Composer) -> None:
    msgs = _errors(check_args([*GOOD, "actor_rollout_ref.rollout.n=1"], composer), "gdpo")
    assert any("every advantage is 0" in m for m in msgs), msgs
    grpo = _replace(GOOD, adv_estimator="algorithm.adv_estimator=grpo")
    assert not _errors(check_args([*grpo, "actor_rollout_ref.rollout.n=1"], composer), "gdpo")


def test_token_limits_with_dynamic_bsz(composer: Composer) -> None:
    long = [*GOOD, "data.max_prompt_length=1024", "data.max_response_length=8000", "algorithm.use_kl_in_reward=True"]
    dyn = [
        *long,
        "actor_rollout_ref.actor.use_dynamic_bsz=True",
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=8192",
    ]
    msgs = _errors(check_args(dyn, composer), "limits")
    # the actor's limit, and the log-prob limits of rollout and ref that interpolate from it
    assert len(msgs) == 3, msgs
    assert all("1024 + 8000 = 9024" in m and "at least 9024" in m for m in msgs)
    assert {m.split("=")[0] for m in msgs} == {
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu",
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu",
        "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu",
    }
    ok = [*dyn, "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=18048"]
    assert not _errors(check_args(ok, composer), "limits")
    one = [*ok, "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=4096"]
    assert [m.split("=")[0] for m in _errors(check_args(one, composer), "limits")] == [
        "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu"
    ]
    # Ulysses sequence parallelism splits a sequence: 4 x 4096 holds 9024 tokens
    sp = [*dyn, "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=4096"]
    sp += [
        "actor_rollout_ref.actor.ulysses_sequence_parallel_size=4",
        "actor_rollout_ref.ref.ulysses_sequence_parallel_size=4",
    ]
    assert not _errors(check_args(sp, composer), "limits")


def test_max_model_len(composer: Composer) -> None:
    args = [*GOOD, "data.max_prompt_length=1024", "data.max_response_length=8000"]
    msgs = _errors(check_args([*args, "actor_rollout_ref.rollout.max_model_len=8192"], composer), "limits")
    assert msgs and "silently cuts responses" in msgs[0], msgs
    assert not _errors(check_args([*args, "actor_rollout_ref.rollout.max_model_len=9024"], composer), "limits")


def test_unregistered_estimator(composer: Composer) -> None:
    found = check_args(_replace(GOOD, adv_estimator="algorithm.adv_estimator=grpo_vectorised"), composer)
    msgs = _errors(found, "estimator")
    assert msgs and "did you mean grpo_vectorized" in msgs[0] and "gdpo" in msgs[0], msgs
    for name in ("grpo", "rloo", "gae", "optimal_token_baseline", "gdpo"):
        assert not _errors(
            check_args(_replace(GOOD, adv_estimator=f"algorithm.adv_estimator={name}"), composer), "estimator"
        )


def test_unknown_gdpo_top_level_key(composer: Composer) -> None:
    found = check_args([*GOOD, "+algorithm.gdpo_reward_weigths=[1.0,0.5]"], composer)
    msgs = _errors(found, "unknown-key")
    assert msgs and "did you mean 'algorithm.gdpo_reward_weights'" in msgs[0], msgs
    msgs = _errors(check_args([*GOOD, "+algorithm.gdpo_scale=2"], composer), "unknown-key")
    assert msgs and "valid: ['algorithm.gdpo_reward_keys', 'algorithm.gdpo_reward_weights'" in msgs[0], msgs


def test_megatron_key_without_megatron_engine(composer: Composer) -> None:
    key = "actor_rollout_ref.actor.megatron.tensor_model_parallel_size=2"
    msgs = _errors(check_args([*GOOD, key], composer), "backend")
    assert msgs and "add model_engine=megatron" in msgs[0], msgs
    assert not errors(check_args([*GOOD, "model_engine=megatron", key], composer))


def test_gradient_checkpointing_with_megatron(composer: Composer) -> None:
    meg = [*GOOD, "model_engine=megatron", "actor_rollout_ref.model.enable_gradient_checkpointing=True"]
    msgs = _warnings(check_args(meg, composer), "memory")
    assert msgs and "only FSDP reads it" in msgs[0] and "recompute_granularity=full" in msgs[0], msgs
    otc = "actor_rollout_ref.actor.megatron.override_transformer_config"
    fixed = [
        *meg,
        f"{otc}.recompute_granularity=full",
        f"{otc}.recompute_method=uniform",
        f"{otc}.recompute_num_layers=1",
    ]
    found = check_args(fixed, composer)
    assert not _warnings(found, "memory") and not errors(found)
    assert not _warnings(
        check_args([*GOOD, "actor_rollout_ref.model.enable_gradient_checkpointing=True"], composer), "memory"
    )


def test_micro_batch_needed_without_dynamic_bsz(composer: Composer) -> None:
    args = [*GOOD, "actor_rollout_ref.actor.use_dynamic_bsz=False", "actor_rollout_ref.actor.use_kl_loss=True"]
    msgs = _errors(check_args(args, composer), "batch")
    assert len(msgs) == 3 and all("no micro-batch size" in m for m in msgs), msgs
    fixed = [
        *args,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
    ]
    assert not _errors(check_args(fixed, composer), "batch")


def test_backend_not_importable_is_a_warning(composer: Composer, monkeypatch: pytest.MonkeyPatch) -> None:
    from gdpo_verl.check import backend

    monkeypatch.setattr(backend, "importable", lambda name: name != "megatron.bridge")
    found = check_args([*GOOD, "model_engine=megatron"], composer)
    msgs = _warnings(found, "install")
    assert msgs == [
        "the megatron backend cannot be imported here (megatron.bridge missing): fine on a CPU machine, fatal on the "
        "cluster; run `gdpo-verl doctor --backend megatron` there"
    ]
    assert not errors(found)
    vanilla = [*GOOD, "model_engine=megatron", "actor_rollout_ref.actor.megatron.vanilla_mbridge=True"]
    assert not _warnings(check_args(vanilla, composer), "install")  # vanilla mbridge needs `mbridge` instead


FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python: answers pip's dry-run report from $FAKE_REPORT, runs `-c` code for real, logs the rest.
if [[ "$*" == *--dry-run* ]]; then printf '%s' "$FAKE_REPORT"; exit 0; fi
if [[ $1 == -c ]]; then exec python3 "$@"; fi
printf '%s\\n' "$*" >> "$FAKE_LOG"
"""


@pytest.mark.parametrize(
    ("report", "env", "index"),
    [
        ({"version": "2.13.0", "requires_dist": ["nvidia-cudnn-cu13==9.1; platform_system == 'Linux'"]}, None, True),
        ({"version": "2.13.0+cpu", "requires_dist": ["filelock"]}, None, False),  # a local CPU wheel
        ({"version": "2.13.0", "requires_dist": ["filelock"]}, None, False),  # a build without CUDA deps
        ({"version": "2.13.0+cpu"}, "https://mirror.example/cpu", "https://mirror.example/cpu"),
        ({"version": "2.13.0"}, "", False),  # forced plain pip
    ],
)
def test_install_script_takes_a_cpu_torch(report: dict, env: str | None, index: bool | str, tmp_path: Path) -> None:
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "log"
    run_env = {
        **os.environ,
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "FAKE_REPORT": json.dumps({"install": [{"metadata": report}]}),
        "FAKE_LOG": str(log),
    }
    run_env.pop("GDPO_VERL_TORCH_INDEX", None)
    if env is not None:
        run_env["GDPO_VERL_TORCH_INDEX"] = env
    subprocess.run(["bash", str(root / "scripts" / "install_cpu.sh")], env=run_env, check=True, timeout=60)
    torch_line = next(line for line in log.read_text().splitlines() if line.endswith("torch==2.13.0"))
    if index is False:
        assert "--index-url" not in torch_line
    else:
        want = "https://download.pytorch.org/whl/cpu" if index is True else index
        assert f"--index-url {want} torch==2.13.0" in torch_line
