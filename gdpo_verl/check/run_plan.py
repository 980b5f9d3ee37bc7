"""What a composed verl 0.9.1 config will actually do (no verl import): how many steps it runs, what it saves and
when, whether responses are cut, whether a group's responses can differ, how KL enters, and whether the V1 trainer
pads batches with synthetic rows. Read from verl's trainer (v1/trainer_base.py: the loop, `_save_checkpoint` on
save_freq, `_balance_batch`'s upsampling) and its rollout config.
"""

from __future__ import annotations

import math
import os
from typing import Any

from gdpo_verl.check.report import Finding, err, info, warn

ARR = "actor_rollout_ref"
LONG_RUN_STEPS = 20  # a run longer than this without a checkpoint loses everything on a crash


def dataset_rows(files: Any) -> tuple[int | None, list[Finding]]:
    """Rows of the training parquet files when every one exists here (footer metadata only), else None."""
    paths = [files] if isinstance(files, str) else list(files or [])
    total = 0
    for path in paths:
        path = os.path.expanduser(str(path))
        if not path.endswith(".parquet") or not os.path.isfile(path):
            return None, []
        import pyarrow.parquet as pq

        try:
            total += pq.ParquetFile(path).metadata.num_rows
        except Exception as e:  # pyarrow raises its own error types
            return None, [
                warn(
                    "data",
                    f"data.train_files: {path} is not a readable parquet file here ({type(e).__name__}: {e}); verl "
                    "fails while loading the data if the cluster's copy is the same",
                )
            ]
    return (total if paths else None), []


def planned_steps(cfg: Any, rows: int | None) -> tuple[int | None, list[Finding]]:
    """verl's total_training_steps: the explicit one, else epochs x rows // train_batch_size; the loop also ends when
    the epochs run out."""
    bsz = int(cfg.data.train_batch_size)
    epochs = int(cfg.trainer.total_epochs)
    asked = cfg.trainer.get("total_training_steps")
    asked = int(asked) if asked is not None else None
    dapo = cfg.algorithm.get("filter_groups") is not None and bool(cfg.algorithm.filter_groups.get("enable", False))
    if rows is None:
        if asked is None:
            return None, [info("steps", f"trainer.total_epochs={epochs} x (training rows // {bsz}); data not here")]
        return asked, [info("steps", f"trainer.total_training_steps={asked} (data not here: epochs not checked)")]
    per_epoch = rows // bsz
    if per_epoch == 0:
        return 0, [
            err(
                "steps",
                f"the training data has {rows} rows, fewer than data.train_batch_size={bsz}: zero steps per epoch "
                "(verl drops the incomplete batch), so the run ends without one update; lower data.train_batch_size",
            )
        ]
    available = per_epoch * epochs
    steps = asked if asked is not None else available
    out = [info("steps", f"{steps} steps ({rows} rows // {bsz} = {per_epoch} per epoch, {epochs} epochs)")]
    if asked is not None and asked > available:
        out.append(
            warn(
                "steps",
                f"trainer.total_training_steps={asked} but the data allow {per_epoch} steps x trainer.total_epochs="
                f"{epochs} = {available}: verl stops at step {available}, after the last epoch; set "
                f"trainer.total_epochs={math.ceil(asked / per_epoch)}",
            )
        )
    elif dapo and asked is not None and asked * 2 > available:
        out.append(
            warn(
                "steps",
                f"dynamic sampling draws batches until {bsz} groups pass the filter, so a step costs 1/keep-rate "
                f"batches: {epochs} epochs x {per_epoch} batches = {available} batches allow only {available} steps "
                f"at a 100% keep rate, {available // 2} at 50%, fewer than trainer.total_training_steps={asked}; raise "
                f"trainer.total_epochs to {math.ceil(asked * 2 / per_epoch)} or more",
            )
        )
    return steps, out


def check_checkpoints(cfg: Any, steps: int | None) -> list[Finding]:
    freq = int(cfg.trainer.save_freq)
    where = cfg.trainer.get("default_local_dir")
    if freq <= 0:
        if steps is not None and steps <= LONG_RUN_STEPS:
            return [info("save", f"trainer.save_freq={freq}: no checkpoint (a {steps}-step run)")]
        return [
            warn(
                "save",
                f"trainer.save_freq={freq}: verl saves only when save_freq > 0, so this "
                f"{f'{steps}-step ' if steps else ''}run never writes a checkpoint, not even the final model; a crash "
                "loses everything. Set trainer.save_freq (e.g. 50; the last step is always saved when > 0)",
            )
        ]
    if steps is None:
        return [info("save", f"checkpoints every {freq} steps and at the last step, in {where}")]
    saved = list(range(freq, steps + 1, freq))
    if not saved or saved[-1] != steps:
        saved.append(steps)
    keep = cfg.trainer.get("max_actor_ckpt_to_keep")
    kept = f"; keeps the last {keep}" if keep else "; keeps all"
    shown = ", ".join(map(str, saved)) if len(saved) <= 6 else f"{saved[0]}, {saved[1]}, ..., {saved[-1]}"
    return [info("save", f"checkpoints at steps {shown} ({len(saved)}) in {where}{kept}")]


def check_lengths(cfg: Any) -> list[Finding]:
    rollout = cfg[ARR].rollout
    out = []
    for what, data_key, key in (
        ("responses", "max_response_length", "response_length"),
        ("prompts", "max_prompt_length", "prompt_length"),
    ):
        data_len, roll_len = int(cfg.data[data_key]), int(rollout[key])
        if roll_len < data_len:
            out.append(
                warn(
                    "truncation",
                    f"{ARR}.rollout.{key}={roll_len} < data.{data_key}={data_len}: the rollout cuts {what} at "
                    f"{roll_len} tokens silently (a cut response is scored as it stands); drop the override (it "
                    f"follows data.{data_key}) or set both to the same value",
                )
            )
    return out


def check_sampling(cfg: Any) -> list[Finding]:
    """Greedy decoding makes every response of a group identical: every reward is constant in its group."""
    rollout = cfg[ARR].rollout
    n = int(rollout.n)
    greedy = []
    if not bool(rollout.get("do_sample", True)):
        greedy.append("do_sample=False")
    if float(rollout.get("temperature", 1.0)) == 0.0:
        greedy.append("temperature=0")
    if int(rollout.get("top_k", -1)) == 1:
        greedy.append("top_k=1")
    if n < 2 or not greedy:
        return []
    return [
        err(
            "sampling",
            f"{ARR}.rollout.{' and '.join(greedy)} with rollout.n={n}: greedy decoding gives the {n} responses of a "
            "prompt the same text, so every reward is constant within its group and every group-normalized "
            "advantage is 0: the run updates nothing. Sample (do_sample=True, temperature > 0, e.g. 1.0)",
        )
    ]


def check_kl(cfg: Any) -> list[Finding]:
    actor = cfg[ARR].actor
    if bool(actor.get("use_kl_loss", False)) and bool(cfg.algorithm.get("use_kl_in_reward", False)):
        return [
            warn(
                "kl",
                f"KL to the reference is applied twice: as a loss term ({ARR}.actor.use_kl_loss=True, "
                f"kl_loss_coef={actor.get('kl_loss_coef')}) and in the reward (algorithm.use_kl_in_reward=True, "
                f"kl_coef={cfg.algorithm.kl_ctrl.get('kl_coef')}): the policy is pulled to the reference by both; "
                "keep one (the paper's runs use one or the other)",
            )
        ]
    return []


def world_size(cfg: Any) -> int:
    return int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)


def model_parallel_size(actor: Any) -> int:
    """GPUs one model replica spans: Megatron's tensor x pipeline x context parallel, else Ulysses' sequence
    parallel."""
    if str(actor.strategy) == "megatron" and actor.get("megatron") is not None:
        meg = actor.megatron
        mp = int(meg.tensor_model_parallel_size) * int(meg.pipeline_model_parallel_size)
        return mp * int(meg.get("context_parallel_size", 1) or 1)
    return int(actor.get("ulysses_sequence_parallel_size", 1) or 1)


def data_parallel_size(cfg: Any) -> int:
    return max(1, world_size(cfg) // max(1, model_parallel_size(cfg[ARR].actor)))


def check_padding(cfg: Any) -> list[Finding]:
    """V1's `_balance_batch` upsamples each batch to a multiple of lcm(data-parallel size, mini-batch x n) with
    synthetic rows (verl.trainer.ppo.padding_utils.upsample_batch_to_divisible_size)."""
    if not bool(cfg.trainer.get("use_v1", False)):
        return []
    n = int(cfg[ARR].rollout.n)
    rows = int(cfg.data.train_batch_size) * n
    mini = int(cfg[ARR].actor.ppo_mini_batch_size) * n
    dp = data_parallel_size(cfg)
    multiple = math.lcm(dp, mini)
    padded = -(-rows // multiple) * multiple
    if padded == rows:
        return []
    return [
        warn(
            "padding",
            f"the V1 trainer pads each step's {rows} responses (train_batch_size x n) to {padded}, a multiple of "
            f"lcm(data-parallel size {dp}, ppo_mini_batch_size x n = {mini}) = {multiple}: {padded - rows} synthetic "
            f"rows per step ({100 * (padded - rows) / rows:.0f}% more forward/backward work). Choose "
            f"train_batch_size x n and ppo_mini_batch_size x n divisible by {dp} (GPUs / model-parallel size)",
        )
    ]


def check_run_plan(cfg: Any) -> list[Finding]:
    rows, out = dataset_rows(cfg.data.get("train_files"))
    steps, plan = planned_steps(cfg, rows)
    out += plan
    out += check_checkpoints(cfg, steps)
    out += check_lengths(cfg)
    out += check_sampling(cfg)
    out += check_kl(cfg)
    out += check_padding(cfg)
    return out
