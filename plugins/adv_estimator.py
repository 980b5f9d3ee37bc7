"""`algorithm.adv_estimator=gdpo` -> our estimator, on verl's legacy and V1 trainers.

verl calls the registered function with verl-shaped arguments; this adapter finds the reward components (in
``non_tensor_batch`` on the legacy trainer, or fetched from TransferQueue by :mod:`gdpo_verl_plugins.v1_trainer`),
runs :func:`gdpo_verl.estimator.compute_gdpo` and hands the metrics to the trainer hooks.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np
import torch

from . import metrics_bridge, v1_trainer, verl_shapes

logger = logging.getLogger("gdpo_verl")
NAME = "gdpo"
_builtin: dict[str, Any] = {}  # verl's own gdpo, kept for algorithm.gdpo.impl=verl
_announced = False


class MissingRewardKeyError(KeyError):
    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


def _as_floats(key: str, values: Any) -> np.ndarray:
    """One reward column -> float64 with NaN for None/missing; anything non-numeric is an error naming the key."""
    if isinstance(values, torch.Tensor):  # any dtype numpy lacks (bf16) included
        values = values.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError, RuntimeError):  # e.g. bf16 0-d tensors, which numpy cannot convert
        arr = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            arr[i] = v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v
    if arr.dtype != object:
        if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
            raise TypeError(f"GDPO reward key {key!r} holds non-numeric values of dtype {arr.dtype}")
        return arr.astype(np.float64).reshape(-1)
    arr = arr.reshape(-1)
    try:
        return arr.astype(np.float64)  # fast path: numbers only
    except (TypeError, ValueError):
        pass
    out = np.empty(arr.shape[0], dtype=np.float64)
    try:
        out[:] = [np.nan if v is None else float(v) for v in arr]
    except (TypeError, ValueError):
        bad = next(v for v in arr if v is not None and not _is_number(v))
        raise TypeError(f"GDPO reward key {key!r} holds a non-numeric value {bad!r}") from None
    return out


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _components(keys: tuple[str, ...], non_tensor_batch: dict | None, fetched: dict | None, n: int) -> torch.Tensor:
    sources = [s for s in (non_tensor_batch, fetched) if s]
    columns = []
    for key in keys:
        source = next((s for s in sources if key in s), None)
        if source is None:
            present = sorted({k for s in sources for k in s} - {"uid"})
            raise MissingRewardKeyError(
                f"GDPO reward key {key!r} (algorithm.gdpo_reward_keys={list(keys)}) is not in the batch. Reward "
                f"fields present: {present}. Make your reward function return a dict with every key (plus 'score')."
            )
        column = _as_floats(key, source[key])
        if column.shape[0] != n:
            raise ValueError(f"GDPO reward key {key!r} has {column.shape[0]} values for a batch of {n}")
        columns.append(column)
    return torch.from_numpy(np.stack(columns, axis=1))


@contextlib.contextmanager
def _one_thread():
    """The per-sample work is O(batch x rewards), far too small to gain from intra-op threads and, on a busy host,
    many times slower with them (thread hand-offs per op); only the (batch x tokens) broadcast stays parallel."""
    before = torch.get_num_threads()
    if before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before > 1:
            torch.set_num_threads(before)


def _dense_groups(index: Any) -> torch.Tensor:
    """uid labels -> dense int64 group ids (hash-based factorize: verl's uids are strings)."""
    import pandas as pd  # a verl dependency

    codes, _ = pd.factorize(np.asarray(index, dtype=object).reshape(-1), sort=False)
    return torch.from_numpy(codes.astype(np.int64))


def _parse_config(config: Any):
    """Every config type verl passes (DictConfig, its AlgoConfig dataclass, a dict). No reward keys is an error:
    GDPO on the summed score alone would be GRPO plus a batch step; ``[score]`` must be asked for."""
    from gdpo_verl.config import GDPOConfig

    return GDPOConfig.from_algorithm(config)


def compute_gdpo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    epsilon: float = 1e-6,
    norm_adv_by_std_in_grpo: bool = True,
    config: Any = None,
    non_tensor_batch: dict | None = None,
    batch: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl estimator signature. Group statistics from ``index`` (uid); settings from ``config`` (algorithm)."""
    from gdpo_verl.estimator import compute_gdpo, to_tokens

    global _announced
    cfg = _parse_config(config)
    if cfg.impl == "verl":
        if NAME not in _builtin:
            raise ValueError(f"algorithm.gdpo.impl=verl, but verl {verl_shapes.verl_version()} has no built-in gdpo")
        return _builtin[NAME](
            token_level_rewards, response_mask, index, epsilon, norm_adv_by_std_in_grpo, config, non_tensor_batch, batch
        )
    if not _announced:
        logger.warning(
            "gdpo-verl: adv_estimator=gdpo runs gdpo_verl's GDPO (verl's built-in: +algorithm.gdpo.impl=verl)"
        )
        _announced = True
    if index is None:
        raise ValueError("GDPO needs the group index (uid) of every sample")
    ctx = v1_trainer.current()
    n = response_mask.shape[0]
    if cfg.reward_keys == ("score",) and not (non_tensor_batch and "score" in non_tensor_batch):
        scores = batch["token_level_scores"] if batch is not None and "token_level_scores" in batch else None
        fetched = {"score": (scores if scores is not None else token_level_rewards).sum(-1).tolist()}
    else:
        fetched = ctx.components if ctx else None
        if ctx is None:
            _require_v1_hook_if_v1(cfg.reward_keys, non_tensor_batch)
    comps = _components(cfg.reward_keys, non_tensor_batch, fetched, n)
    kl = None
    if cfg.use_kl_in_reward:
        if batch is None or "token_level_scores" not in batch:
            raise ValueError("GDPO with use_kl_in_reward needs token_level_scores next to token_level_rewards")
        kl = (token_level_rewards - batch["token_level_scores"]).sum(-1)
    lengths = response_mask.sum(-1) if cfg.batch_norm == "token" else torch.ones(n)
    labels = _dense_groups(index)
    # V1 trainer: statistics over each real session's final output, shared by its outputs; verl's padding rows
    # (added to make the batch divisible) count nowhere and get 0.
    rows = ctx.final_rows if ctx else None
    step = ctx.step if ctx else None  # only the V1 trainer hands us the step (weight schedules)
    with _one_thread():
        if rows is not None:  # statistics over the rows that count; their value to each row, 0 to padding rows
            final, owner = (torch.from_numpy(x) for x in rows)
            counted, metrics = compute_gdpo(
                comps[final], labels[final], lengths[final], cfg, None if kl is None else kl[final], step
            )
            scalars = torch.zeros(n, dtype=counted.dtype)
            real = owner >= 0
            scalars[real] = counted[owner[real]]
        else:
            scalars, metrics = compute_gdpo(comps, labels, lengths, cfg, kl, step)
    metrics_bridge.push(metrics)
    advantages = to_tokens(scalars, response_mask)
    return advantages, advantages


def _require_v1_hook_if_v1(keys: tuple[str, ...], non_tensor_batch: dict | None) -> None:
    """No V1 context and the reward keys not in the batch: we are on the V1 trainer without our hook (its shape is
    missing in this verl). Stop naming the missing piece rather than report the keys missing."""
    problem = verl_shapes.problem(verl_shapes.V1_ADVANTAGE)
    missing = [k for k in keys if k not in (non_tensor_batch or {})]
    if problem and missing:
        raise verl_shapes.VerlShapeError(
            f"gdpo-verl: adv_estimator=gdpo cannot get its reward components {missing} on verl's V1 trainer: "
            f"{problem}. Use the legacy trainer (trainer.use_v1=false) or a verl this plugin hooks (gdpo-verl doctor)."
        )


def _register(core_algos: Any) -> None:
    registry = core_algos.ADV_ESTIMATOR_REGISTRY
    current = registry.get(NAME)
    if current is not None and current is not compute_gdpo_outcome_advantage:
        _builtin[NAME] = current
    registry[NAME] = compute_gdpo_outcome_advantage


def install() -> None:
    verl_shapes.when_shaped(verl_shapes.ESTIMATOR, _register)
    v1_trainer.install()
    from . import legacy_trainer, separated_trainers

    legacy_trainer.install()
    separated_trainers.install()
