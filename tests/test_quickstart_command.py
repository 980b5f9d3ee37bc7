"""The verl command line and environment the quickstart builds, console parsing, reports and the CLI (no training
run)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path

import pytest

from gdpo_verl.quickstart import cli, command, console, report, runner
from gdpo_verl.quickstart.assets import Assets

ASSETS = Assets(Path("/a/model"), Path("/a/train.parquet"), Path("/a/val.parquet"))


def _keys(overrides):
    return {o.split("=", 1)[0].lstrip("+"): o.split("=", 1)[1] for o in overrides}


def test_gdpo_overrides():
    ov = _keys(command.overrides(command.RunConfig(out=Path("/o"), steps=2), ASSETS))
    assert ov["algorithm.adv_estimator"] == "gdpo"
    assert ov["algorithm.gdpo_reward_keys"] == "[format,correct]"
    assert ov["algorithm.gdpo_reward_weights"] == "[1.0,1.0]"
    assert ov["actor_rollout_ref.rollout.name"] == "hf_cpu"
    assert ov["trainer.total_training_steps"] == "2" and ov["trainer.use_v1"] == "True"
    assert ov["reward.custom_reward_function.path"] == "pkg://gdpo_verl.quickstart.task"
    assert ov["trainer.rollout_data_dir"] == "/o/rollouts"
    assert "file" in ov["trainer.logger"]


def test_gdpo_keys_need_a_plus_and_grpo_has_none():
    gdpo = command.overrides(command.RunConfig(out=Path("/o")), ASSETS)
    assert "+algorithm.gdpo_reward_keys=[format,correct]" in gdpo
    grpo = command.overrides(command.RunConfig(out=Path("/o"), estimator="grpo", weights=(2.0, 1.0)), ASSETS)
    keys = _keys(grpo)
    assert keys["algorithm.adv_estimator"] == "grpo" and not any("gdpo" in k for k in keys)
    assert keys["reward.custom_reward_function.reward_kwargs.format_weight"] == "2.0"  # GRPO sums the same weights


def test_legacy_and_extra_overrides_come_last():
    ov = command.overrides(command.RunConfig(out=Path("/o"), legacy=True, extra=("trainer.logger=[console]",)), ASSETS)
    assert "trainer.use_v1=False" in ov and ov[-1] == "trainer.logger=[console]"


def test_environment_points_verls_file_logger_at_the_output_folder():
    env = command.environment(command.RunConfig(out=Path("/o")))
    assert env["VERL_FILE_LOGGER_PATH"] == "/o/metrics.jsonl" and env["HF_HUB_OFFLINE"] == "1"
    assert env["GDPO_VERL_CPU"] == "1"  # forced: the quickstart is a CPU run
    built = command.build(command.RunConfig(out=Path("/o")), ASSETS)
    assert built.argv[1:3] == ("-m", "verl.trainer.main_ppo") and built.env == env
    assert built.environment({"GDPO_VERL_CPU": "0", "X": "1"}) == {**env, "X": "1"}


def test_parse_console():
    line = "(TaskRunnerV1 pid=1) step:3 - critic/score/mean:0.25 - gdpo/format/mean:0.5 - num_turns/min:np.int32(2)"
    step, metrics = console.parse_step(line)
    assert step == 3 and metrics == {"critic/score/mean": 0.25, "gdpo/format/mean": 0.5, "num_turns/min": 2.0}
    assert console.parse_step("Training Progress: 1/2") is None


def _write_rollouts(folder: Path):
    folder.mkdir(parents=True)
    for step, outs in ((1, ["x", "7"]), (2, ["77", "777"])):
        rows = [{"input": "p", "output": o, "gts": "7", "score": 0.0, "step": step} for o in outs]
        (folder / f"{step}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_reports_from_rollout_dumps_and_metrics(tmp_path):
    _write_rollouts(tmp_path / "rollouts")
    rewards = report.all_step_rewards(tmp_path / "rollouts")
    assert rewards[1]["correct"] == 0.5 and rewards[2]["correct"] == 1.0
    assert rewards[2]["format"] == pytest.approx((2 / 3 + 1) / 2)
    metrics_file = tmp_path / "metrics.jsonl"
    metrics_file.write_text(
        "".join(json.dumps({"step": s, "data": {"timing_s/step": t}}) + "\n" for s, t in ((1, 9.0), (2, 1.0), (3, 2.0)))
    )
    metrics = report.read_metrics(metrics_file)
    assert report.seconds_per_step(metrics) == 1.5  # step 1 (warm-up) left out
    png = report.plot(rewards, tmp_path / "curves.png", "t")
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    assert report.window_mean(rewards, "correct", first=False) == 1.0


def test_summary_is_written_and_failure_is_reported(tmp_path, capsys):
    _write_rollouts(tmp_path / "rollouts")
    (tmp_path / "metrics.jsonl").write_text(
        json.dumps({"step": 1, "data": {"gdpo/format/mean": 0.1, "timing_s/step": 2.0}}) + "\n"
    )
    cfg = command.RunConfig(out=tmp_path, steps=2)
    ok = runner.RunResult(returncode=0, wall_s=10.0, log_path=tmp_path / "verl.log")
    assert cli.summarize(cfg, ok) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["gdpo_metrics_logged"] and summary["steps_done"] == 1
    assert (tmp_path / "curves.png").exists()
    failed = runner.RunResult(returncode=3, wall_s=1.0, log_path=tmp_path / "verl.log", tail=["boom"])
    assert cli.summarize(cfg, failed) == 3
    assert "boom" in capsys.readouterr().err


def test_cli_arguments_and_dry_run(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--steps", "2", "--out", str(tmp_path), "--dry-run", "--", "trainer.logger=[console]"])
    assert args.steps == 2 and args.overrides == ["trainer.logger=[console]"] and args.estimator == "gdpo"
    assert cli.run(args) == 0
    words = shlex.split(capsys.readouterr().out.replace("\\\n", ""))  # the shell's line continuations
    assert words[words.index("-m") + 1] == "verl.trainer.main_ppo" and words[-1] == "trainer.logger=[console]"
    assert (tmp_path / "assets" / "model" / "config.json").exists() and (tmp_path / "command.txt").exists()


@pytest.mark.verl
def test_overrides_compose_with_verls_own_config():
    """Every key we pass exists in verl's Hydra config (or is added with '+'), and verl's checks accept the result."""
    verl = pytest.importorskip("verl")
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    for cfg in (command.RunConfig(out=Path("/o")), command.RunConfig(out=Path("/o"), estimator="grpo", legacy=True)):
        GlobalHydra.instance().clear()  # another test may have left Hydra initialized
        with initialize_config_dir(config_dir=config_dir, version_base=None):
            config = compose("ppo_trainer", overrides=command.overrides(cfg, ASSETS))
        assert config.actor_rollout_ref.rollout.name == "hf_cpu"
        assert not need_reference_policy(config) and not need_critic(config)
        validate_config(config=config, use_reference_policy=False, use_critic=False)


def test_megatron_backend_overrides_set_the_layout_and_the_cpu_keys():
    ov = _keys(command.overrides(command.RunConfig(out=Path("/o"), backend="megatron", tp=2, pp=2), ASSETS))
    assert ov["model_engine"] == "megatron" and "actor_rollout_ref.actor.strategy" not in ov
    mc = "actor_rollout_ref.actor.megatron"
    for role in (mc, "actor_rollout_ref.ref.megatron"):
        assert ov[f"{role}.tensor_model_parallel_size"] == "2" and ov[f"{role}.pipeline_model_parallel_size"] == "2"
        assert ov[f"{role}.sequence_parallel"] == "False"
    assert ov[f"{mc}.vanilla_mbridge"] == "True" and ov[f"{mc}.use_remove_padding"] == "False"
    assert ov[f"{mc}.override_transformer_config.transformer_impl"] == "local"
    assert ov[f"{mc}.override_transformer_config.masked_softmax_fusion"] == "False"
    assert ov["trainer.n_gpus_per_node"] == "4" and ov["ray_kwargs.ray_init.num_gpus"] == "4"  # TP x PP workers
    default = _keys(command.overrides(command.RunConfig(out=Path("/o")), ASSETS))
    assert default["actor_rollout_ref.actor.strategy"] == "fsdp2" and "model_engine" not in default
    assert default["trainer.n_gpus_per_node"] == "1"


@pytest.mark.parametrize(
    ("backend", "tp", "pp", "match"),
    [("fsdp2", 2, 1, "megatron only"), ("megatron", 0, 1, ">= 1"), ("deepspeed", 1, 1, "unknown backend")],
)
def test_bad_backend_layouts_are_refused(backend, tp, pp, match):
    with pytest.raises(ValueError, match=match):
        command.backend_overrides(backend, tp, pp)


def test_cli_megatron_dry_run_writes_the_command(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--backend", "megatron", "--tp", "2", "--pp", "2", "--out", str(tmp_path), "--dry-run"])
    assert cli.run(args) == 0
    command = (tmp_path / "command.txt").read_text()
    assert (
        "model_engine=megatron" in command
        and "actor_rollout_ref.actor.megatron.tensor_model_parallel_size=2" in command
    )
    bad = parser.parse_args(["--tp", "2", "--out", str(tmp_path), "--dry-run"])
    assert cli.run(bad) == 2 and "megatron only" in capsys.readouterr().err


def test_missing_megatron_packages_are_named(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert command.missing_backend_packages("megatron") == ["megatron-core", "mbridge", "einops"]
    assert command.missing_backend_packages("fsdp2") == []


@pytest.mark.verl
def test_megatron_overrides_compose_with_verls_own_config():
    verl = pytest.importorskip("verl")
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    GlobalHydra.instance().clear()
    cfg = command.RunConfig(out=Path("/o"), backend="megatron", tp=2, pp=2)
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose("ppo_trainer", overrides=command.overrides(cfg, ASSETS))
    actor, ref = config.actor_rollout_ref.actor, config.actor_rollout_ref.ref
    assert actor.strategy == "megatron" and ref.strategy == "megatron"
    assert actor.megatron.tensor_model_parallel_size == 2 and ref.megatron.pipeline_model_parallel_size == 2
    assert ref.megatron.vanilla_mbridge and not ref.megatron.sequence_parallel  # the reference inherits the bridge
    assert ref.megatron.override_transformer_config.transformer_impl == "local"
