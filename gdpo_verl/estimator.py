"""From verl-shaped tensors to GDPO advantages: the one place that runs the steps in order.

    NaN policy -> Eq. 8 conditions -> group step (Eq. 4, core) -> aggregation (Eq. 5/7 for ``gdpo``)
    -> KL term -> batch step (Eq. 6, core) -> metrics

Torch only. The verl adapter (``gdpo_verl_plugins.adv_estimator``) gathers the reward components and calls
:func:`compute_gdpo`; :func:`to_tokens` broadcasts the result over the response tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from gdpo_verl.aggregations.base import AggregationConfig, AggregationOutput, check_output
from gdpo_verl.aggregations.builtins import resolve
from gdpo_verl.aggregations.options import UNVERIFIED
from gdpo_verl.aggregations.schedules import weights_at
from gdpo_verl.config import GDPOConfig
from gdpo_verl.core import GDPOResult, apply_conditions, batch_normalize, group_index, group_normalize
from gdpo_verl.metrics import aggregation_metrics, gdpo_metrics

logger = logging.getLogger("gdpo_verl")
_warned: set[str] = set()


class MissingRewardError(ValueError):
    """A reward component has missing values and ``nan_policy=error``."""


@dataclass(frozen=True)
class _Run:
    """What a config fixes for a whole run, resolved once."""

    aggregate: Any  # fn(rewards, group_ids, advantages, AggregationConfig)
    args: dict[str, Any]
    scale_by_std: torch.Tensor  # (K,) bool


_runs: dict[int, tuple[GDPOConfig, _Run]] = {}


def _run_of(cfg: GDPOConfig) -> _Run:
    hit = _runs.get(id(cfg))
    if hit is not None and hit[0] is cfg:
        return hit[1]
    if cfg.aggregation in UNVERIFIED:
        _warn_once(
            f"unverified:{cfg.aggregation}",
            f"GDPO aggregation {cfg.aggregation!r} is an unverified reading: "
            f"{UNVERIFIED[cfg.aggregation]} (docs/aggregations.md)",
        )
    scale = torch.tensor(list(cfg.std_norm) or [True] * len(cfg.reward_keys), dtype=torch.bool)
    run = _Run(resolve(cfg.aggregation), dict(cfg.aggregation_args), scale)
    _runs[id(cfg)] = (cfg, run)
    return run


def compute_gdpo(
    components: torch.Tensor,
    index: Sequence | torch.Tensor,
    lengths: torch.Tensor,
    cfg: GDPOConfig,
    kl_shaping: torch.Tensor | None = None,
    step: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """components: (B, K) in ``cfg.reward_keys`` order, NaN or +-inf = missing. lengths: (B,) response lengths.
    kl_shaping: (B,) sequence sum of (token_level_rewards - token_level_scores), read when ``use_kl_in_reward``;
    a non-finite value (e.g. a reference log-prob of -inf) drops that rollout's KL term, counted in
    ``gdpo/kl/nonfinite_frac`` and warned once. step: the training step (verl's ``global_steps``), read when the
    weights are a schedule.
    Returns (scalar advantages (B,) float64, metrics). Broadcast them with :func:`to_tokens`."""
    run = _run_of(cfg)
    keys = cfg.reward_keys
    weights = weights_at(keys, cfg.weight_schedule, step) if cfg.weight_schedule else cfg.weights
    r = _apply_nan_policy(components.to(torch.float64), keys, cfg.nan_policy)
    r = apply_conditions(r, cfg.condition_columns)
    gid, n_groups = group_index(index)
    if gid.numel() != r.shape[0] or not n_groups:
        raise ValueError(f"GDPO: the group index has {gid.numel()} entries for {r.shape[0]} samples")
    gid = gid.to(r.device)
    w = torch.tensor(weights, dtype=torch.float64, device=r.device)

    per_reward = group_normalize(r, gid, n_groups, cfg.eps_group, run.scale_by_std.to(r.device))  # Eq. 4
    has_reward = ~torch.isnan(r).all(dim=1)
    agg = AggregationConfig(keys, w, run.args, n_groups)  # Eq. 5/7, or the configured aggregation
    out: AggregationOutput = check_output(
        cfg.aggregation, run.aggregate(r, gid, per_reward, agg), r.shape[0], has_reward
    )
    kl, metrics = _kl_term(cfg, kl_shaping)
    total = out.combined if kl is None else out.combined + kl
    adv, mean, std = batch_normalize(total, out.kept, cfg.batch_norm, cfg.eps_batch, lengths)  # Eq. 6

    stats = {"batch_mean": mean, "batch_std": std}
    result = GDPOResult(adv, per_reward, out.combined, out.kept, r, gid, n_groups, stats)
    metrics.update(gdpo_metrics(result, keys, weights, cfg.eps_group))
    metrics.update(aggregation_metrics(result, keys, w, out))
    return adv, metrics


def _apply_nan_policy(r: torch.Tensor, keys: Sequence[str], policy: str) -> torch.Tensor:
    """Non-finite values become missing (NaN); then ``exclude`` keeps them missing, ``zero`` makes them 0 and
    ``error`` stops naming the count per key."""
    r = torch.where(torch.isfinite(r), r, torch.full_like(r, float("nan")))
    if policy == "exclude":
        return r
    missing = torch.isnan(r).sum(dim=0)
    if policy == "error" and bool(missing.any()):
        counts = {k: int(n) for k, n in zip(keys, missing.tolist(), strict=True) if n}
        raise MissingRewardError(f"GDPO: missing (NaN/None/inf) reward values per key: {counts} (nan_policy=error)")
    return torch.nan_to_num(r, nan=0.0)


def _kl_term(cfg: GDPOConfig, kl_shaping: torch.Tensor | None) -> tuple[torch.Tensor | None, dict[str, float]]:
    """``kl_weight`` x the sequence KL shaping, added to A_sum as is (so the KL coefficient keeps its meaning against
    normalized advantages); a non-finite entry gives that rollout no KL term. Returns (term or None, metrics)."""
    if not cfg.use_kl_in_reward:
        return None, {}
    if kl_shaping is None:
        raise ValueError("use_kl_in_reward=True but no KL shaping (token_level_rewards - token_level_scores) given")
    extra = cfg.kl_weight * kl_shaping.to(torch.float64)
    finite = torch.isfinite(extra)
    n_bad = int((~finite).sum())
    metrics = {
        "gdpo/kl/mean": float(extra[finite].mean()) if bool(finite.any()) else 0.0,
        "gdpo/kl/nonfinite_frac": n_bad / max(extra.numel(), 1),
    }
    if n_bad:
        _warn_once(
            "kl_nonfinite",
            f"GDPO: {n_bad} of {extra.numel()} rollouts have a non-finite KL shaping value (e.g. a reference "
            "log-prob of -inf); their KL term is left out (counted in gdpo/kl/nonfinite_frac; warned once)",
        )
    return torch.where(finite, extra, torch.zeros_like(extra)), metrics


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)


def to_tokens(scalars: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Broadcast one advantage per response over its tokens (paper step 5), in the mask's float dtype."""
    dtype = response_mask.dtype if response_mask.is_floating_point() else torch.float32
    return scalars.to(response_mask.device, dtype).unsqueeze(-1) * response_mask.to(dtype)
