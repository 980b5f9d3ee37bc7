"""From verl-shaped tensors to token-level GDPO advantages: NaN policy, KL-in-reward, broadcast over tokens.

Torch only. The verl adapter (``gdpo_verl_plugins.adv_estimator``) gathers the reward components and calls
:func:`compute_gdpo`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from gdpo_verl import aggregations
from gdpo_verl.aggregations.schedules import weights_at
from gdpo_verl.config import GDPOConfig
from gdpo_verl.core import gdpo_advantages
from gdpo_verl.metrics import aggregation_metrics, gdpo_metrics

logger = logging.getLogger("gdpo_verl")
_warned: set[str] = set()


class MissingRewardError(ValueError):
    """A reward component has missing values and ``nan_policy=error``."""


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
    keys = list(cfg.reward_keys)
    weights = list(weights_at(keys, cfg.weight_schedule, step) if cfg.weight_schedule else cfg.weights)
    r = components.to(torch.float64)
    r = torch.where(torch.isfinite(r), r, torch.full_like(r, float("nan")))
    missing = torch.isnan(r).sum(dim=0)
    if cfg.nan_policy == "error" and bool(missing.any()):
        counts = {k: int(n) for k, n in zip(keys, missing.tolist(), strict=True) if n}
        raise MissingRewardError(f"GDPO: missing (NaN/None/inf) reward values per key: {counts} (nan_policy=error)")
    if cfg.nan_policy == "zero":
        r = torch.nan_to_num(r, nan=0.0)

    extra = None
    if cfg.use_kl_in_reward:
        if kl_shaping is None:
            raise ValueError("use_kl_in_reward=True but no KL shaping (token_level_rewards - token_level_scores) given")
        # raw: added to A_sum as is, so the KL coefficient keeps its meaning against normalized advantages
        extra = cfg.kl_weight * kl_shaping.to(torch.float64)

    combine, report = _combiner(cfg)
    result = gdpo_advantages(
        r,
        index,
        weights,
        eps_group=cfg.eps_group,
        eps_batch=cfg.eps_batch,
        scale_by_std=list(cfg.std_norm) or True,
        batch_norm=cfg.batch_norm,
        conditions=cfg.condition_columns,
        lengths=lengths,
        extra=extra,
        combine=combine,
    )
    metrics = gdpo_metrics(result, keys, weights, cfg.eps_group)
    metrics.update(aggregation_metrics(result, keys, torch.as_tensor(weights, dtype=torch.float64), report))
    if extra is not None:
        finite = torch.isfinite(extra)
        n_bad = int(result.stats["extra_nonfinite"])
        metrics["gdpo/kl/mean"] = float(extra[finite].mean()) if bool(finite.any()) else 0.0
        metrics["gdpo/kl/nonfinite_frac"] = n_bad / max(extra.numel(), 1)
        if n_bad:
            _warn_once(
                "kl_nonfinite",
                f"GDPO: {n_bad} of {extra.numel()} rollouts have a non-finite KL shaping value (e.g. a reference "
                "log-prob of -inf); their KL term is left out (counted in gdpo/kl/nonfinite_frac; warned once)",
            )
    return result.advantages, metrics


def _combiner(cfg: GDPOConfig):
    """(combine function for the core or None for the default weighted sum, holder of the aggregation's output)."""
    fn = aggregations.resolve(cfg.aggregation)  # already checked by the config
    report: list[aggregations.AggregationOutput] = []
    if fn is None:
        return None, report
    args = dict(cfg.aggregation_args)

    def combine(r, gid, n_groups, per_reward, w):
        config = aggregations.AggregationConfig(cfg.reward_keys, w, args, n_groups)
        counted = ~torch.isnan(r).all(dim=1)
        out = aggregations.check_output(cfg.aggregation, fn(r, gid, per_reward, config), r.shape[0], counted)
        report.append(out)
        return out.combined

    return combine, report


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)


def to_tokens(scalars: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Broadcast one advantage per response over its tokens (paper step 5), in the mask's float dtype."""
    dtype = response_mask.dtype if response_mask.is_floating_point() else torch.float32
    return scalars.to(response_mask.device, dtype).unsqueeze(-1) * response_mask.to(dtype)
