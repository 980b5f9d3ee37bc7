"""The quickstart's verl command: ``python -m verl.trainer.main_ppo`` with its overrides and environment (pure: it
starts nothing; :mod:`gdpo_verl.quickstart.runner` runs it)."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gdpo_verl.quickstart import tasks
from gdpo_verl.quickstart.assets import Assets

# What a CPU machine needs on top of an ordinary verl GRPO command line (docs/cpu.md explains each one and which of
# them to drop on GPUs). The rollout name comes from the gdpo-verl CPU plugin.
CPU_OVERRIDES = (
    "actor_rollout_ref.rollout.name=hf_cpu",
    "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
    "actor_rollout_ref.model.use_remove_padding=False",
    "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
    "actor_rollout_ref.rollout.agent.num_workers=1",
    "reward.num_workers=1",
    "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
    "trainer.device=cpu",
    "trainer.nnodes=1",
    "ray_kwargs.ray_init.num_cpus=16",
)
BACKENDS = ("fsdp2", "megatron")
FSDP2_OVERRIDES = ("actor_rollout_ref.actor.strategy=fsdp2",)
# verl's Megatron actor and reference on CPU (docs/cpu.md, "Megatron on CPU"): the older `mbridge` bridge,
# megatron-core's own layers instead of Transformer Engine, no sequence parallelism, no fused softmax kernel and
# padded (bshd) sequences. The actor stays bf16 (verl refuses a float32 Megatron actor).
_MCORE = "actor_rollout_ref.actor.megatron"
MEGATRON_OVERRIDES = (
    "model_engine=megatron",
    f"{_MCORE}.vanilla_mbridge=True",
    f"{_MCORE}.use_remove_padding=False",
    f"{_MCORE}.sequence_parallel=False",
    "actor_rollout_ref.ref.megatron.sequence_parallel=False",
    f"+{_MCORE}.override_transformer_config.transformer_impl=local",
    f"{_MCORE}.override_transformer_config.attention_backend=local",
    f"+{_MCORE}.override_transformer_config.sequence_parallel=False",
    f"+{_MCORE}.override_transformer_config.masked_softmax_fusion=False",
)


def backend_overrides(backend: str, tp: int = 1, pp: int = 1) -> list[str]:
    """The actor backend's overrides and the worker count (TP x PP CPU workers for Megatron, 1 for FSDP2)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if tp < 1 or pp < 1:
        raise ValueError(f"--tp and --pp must be >= 1, got tp={tp}, pp={pp}")
    if backend == "fsdp2":
        if (tp, pp) != (1, 1):
            raise ValueError("--tp/--pp apply to --backend megatron only (FSDP2 runs one CPU worker)")
        return [*FSDP2_OVERRIDES, *_workers(1)]
    parallel = [
        f"{_MCORE}.tensor_model_parallel_size={tp}",
        f"{_MCORE}.pipeline_model_parallel_size={pp}",
        f"actor_rollout_ref.ref.megatron.tensor_model_parallel_size={tp}",
        f"actor_rollout_ref.ref.megatron.pipeline_model_parallel_size={pp}",
    ]
    return [*MEGATRON_OVERRIDES, *parallel, *_workers(tp * pp)]


MEGATRON_PACKAGES = {"megatron.core": "megatron-core", "mbridge": "mbridge", "einops": "einops"}


def missing_backend_packages(backend: str) -> list[str]:
    """The distributions a backend needs that cannot be found here (checked without importing them)."""
    if backend != "megatron":
        return []
    from importlib.util import find_spec

    missing = []
    for module, dist in MEGATRON_PACKAGES.items():
        try:
            found = find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(dist)
    return missing


def _workers(n: int) -> list[str]:
    return [f"trainer.n_gpus_per_node={n}", f"+ray_kwargs.ray_init.num_gpus={n}"]


@dataclass
class RunConfig:
    out: Path
    steps: int = 20
    seed: int = 0
    estimator: str = "gdpo"  # gdpo | grpo
    legacy: bool = False
    batch_size: int = 16  # prompts per step
    n: int = 4  # rollouts per prompt
    lr: float = 2e-3
    response_length: int = 8
    weights: tuple[float, float] = (1.0, 1.0)
    backend: str = "fsdp2"  # fsdp2 | megatron (actor and reference)
    tp: int = 1  # Megatron tensor-parallel size
    pp: int = 1  # Megatron pipeline-parallel size
    task: str = tasks.DEFAULT  # gdpo_verl.quickstart.tasks.TASKS
    extra: Sequence[str] = field(default_factory=tuple)  # raw verl overrides, appended last (they win)


def overrides(cfg: RunConfig, assets: Assets) -> list[str]:
    """The full Hydra override list for ``verl.trainer.main_ppo``."""
    reward_keys = tasks.get(cfg.task).REWARD_KEYS
    weighted = list(zip(reward_keys, cfg.weights, strict=True))
    keys = ",".join(reward_keys)
    weights = ",".join(str(w) for w in cfg.weights)
    est = [f"algorithm.adv_estimator={cfg.estimator}"]
    if cfg.estimator == "gdpo":
        est += [f"+algorithm.gdpo_reward_keys=[{keys}]", f"+algorithm.gdpo_reward_weights=[{weights}]"]
    return [
        *est,
        "algorithm.use_kl_in_reward=False",
        f"data.train_files={assets.train_file}",
        f"data.val_files={assets.val_file}",
        f"data.train_batch_size={cfg.batch_size}",
        "data.max_prompt_length=32",
        f"data.max_response_length={cfg.response_length}",
        "data.dataloader_num_workers=0",
        f"data.seed={cfg.seed}",
        f"actor_rollout_ref.model.path={assets.model_dir}",
        "actor_rollout_ref.model.enable_gradient_checkpointing=False",
        f"actor_rollout_ref.actor.optim.lr={cfg.lr}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={cfg.batch_size}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={cfg.batch_size * cfg.n}",
        "actor_rollout_ref.actor.use_kl_loss=False",
        "actor_rollout_ref.actor.entropy_coeff=0",
        f"actor_rollout_ref.rollout.n={cfg.n}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={cfg.batch_size * cfg.n}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={cfg.batch_size * cfg.n}",  # used when KL is on
        f"actor_rollout_ref.rollout.seed={cfg.seed}",
        f"reward.custom_reward_function.path={tasks.module_path(cfg.task)}",
        "reward.custom_reward_function.name=compute_score",
        *(f"+reward.custom_reward_function.reward_kwargs.{k}_weight={w}" for k, w in weighted),
        *CPU_OVERRIDES,
        *backend_overrides(cfg.backend, cfg.tp, cfg.pp),
        f"trainer.use_v1={not cfg.legacy}",
        "trainer.logger=[console,file]",
        "trainer.project_name=gdpo_quickstart",
        f"trainer.experiment_name={cfg.estimator}{'_legacy' if cfg.legacy else ''}{_layout(cfg)}_seed{cfg.seed}",
        f"trainer.total_training_steps={cfg.steps}",
        "trainer.total_epochs=1000",
        "trainer.val_before_train=False",
        "trainer.test_freq=-1",
        "trainer.save_freq=-1",
        f"trainer.default_local_dir={cfg.out / 'checkpoints'}",
        f"trainer.rollout_data_dir={cfg.out / 'rollouts'}",  # per-step rollouts: the per-reward curves come from here
        *cfg.extra,
    ]


def _layout(cfg: RunConfig) -> str:
    return "" if cfg.backend == "fsdp2" else f"_megatron_tp{cfg.tp}pp{cfg.pp}"


def environment(cfg: RunConfig) -> dict[str, str]:
    """The environment variables this run sets on top of the caller's (all of them go into command.txt)."""
    return {
        "GDPO_VERL_CPU": "1",  # the plugin's CPU platform and rollout; the quickstart is a CPU run even beside a GPU
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "VERL_FILE_LOGGER_PATH": str(cfg.out / "metrics.jsonl"),  # verl's own `file` logger backend writes here
        "RAY_DEDUP_LOGS": "1",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass(frozen=True)
class VerlCommand:
    """What to start: ``argv`` with the caller's environment plus ``env``."""

    argv: tuple[str, ...]
    env: dict[str, str]

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with the run's variables on top."""
        return {**(os.environ if base is None else base), **self.env}

    def shell_text(self) -> str:
        """The command as a POSIX shell command, one variable or argument per line (what command.txt holds)."""
        words = [f"{k}={shlex.quote(v)}" for k, v in self.env.items()] + [shlex.quote(a) for a in self.argv]
        return " \\\n  ".join(words) + "\n"


def build(cfg: RunConfig, assets: Assets) -> VerlCommand:
    """The unchanged ``python -m verl.trainer.main_ppo`` with the quickstart's overrides, and its environment."""
    return VerlCommand((sys.executable, "-m", "verl.trainer.main_ppo", *overrides(cfg, assets)), environment(cfg))
