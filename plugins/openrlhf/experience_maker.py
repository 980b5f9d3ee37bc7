"""``GDPOExperienceMaker``: OpenRLHF's ``RemoteExperienceMaker`` with a ``gdpo`` advantage step.

For ``--algo.advantage.estimator gdpo`` the step reads the reward components that the reward function put in
``extra_logs`` (OpenRLHF copies them to ``experience.info[key]``, one value per sample), groups the rollouts by
prompt the way OpenRLHF's group estimators do (position in the rollout batch // n_samples_per_prompt), computes the
GDPO scalar advantage with gdpo_verl, then hands it to OpenRLHF's own ``compute_reward`` (reward clip, per-token KL
penalty, scalar on the last action token) and ``get_cumulative_returns``, exactly as OpenRLHF's ``group_norm`` does
with its normalized reward. Every other estimator is the parent's, untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from gdpo_verl_plugins.openrlhf import library, settings, shapes

logger = logging.getLogger("gdpo_verl")
_maker_module = shapes.require(shapes.EXPERIENCE_MAKER)
shapes.require("openrlhf.trainer.ppo_utils.experience")
RemoteExperienceMaker = _maker_module.RemoteExperienceMaker
compute_reward = _maker_module.compute_reward
# info keys OpenRLHF itself writes before the advantage step (left out of "keys present" in errors)
OPENRLHF_INFO = frozenset({"reward", "score", "response_clip_ratio", "kl", "logprobs_diff", "group_reward_std"})


class MissingComponentError(KeyError):
    """A sample reached the trainer without a GDPO reward component."""

    def __str__(self) -> str:  # KeyError would print the repr
        return str(self.args[0])


def _present(info: dict) -> list[str]:
    return sorted(k for k in info if k not in OPENRLHF_INFO and not str(k).startswith("gdpo/"))


def require_components(samples: Sequence[Any], keys: Sequence[str]) -> None:
    """Every rollout sample must carry every key in ``info`` (OpenRLHF would silently misalign a key some samples
    lack when it concatenates them)."""
    for position, sample in enumerate(samples):
        missing = [k for k in keys if k not in sample.info]
        if missing:
            raise MissingComponentError(
                f"GDPO reward component(s) {missing} (--gdpo.reward_keys={list(keys)}) missing for rollout sample "
                f"{position} of {len(samples)} (prompt {str(sample.prompts[:1])[:80]}...). Keys its reward function "
                f"returned in extra_logs: {_present(sample.info)}. Return every key for every sample (a value of "
                "None/NaN marks it missing): gdpo_verl_plugins.openrlhf.rewards.component_logs does. OpenRLHF logs a "
                "reward function that raised at INFO level only ('Failed to fetch reward'): look there too."
            )


def _column(experience: Any, key: str) -> torch.Tensor:
    n = len(experience.index)
    value = experience.info.get(key)
    if not isinstance(value, torch.Tensor) or value.numel() != n:
        got = "absent" if value is None else f"{len(value) if isinstance(value, list) else value.numel()} values"
        raise MissingComponentError(
            f"GDPO reward component {key!r}: {got} for a micro-batch of {n} samples (some samples lack it, and "
            f"OpenRLHF concatenated the others). Keys present: {_present(experience.info)}"
        )
    return value.detach().reshape(-1).to("cpu", torch.float64)


class GDPOExperienceMaker(RemoteExperienceMaker):
    """``RemoteExperienceMaker`` with ``gdpo``; the GDPO settings come from ``strategy.args.gdpo`` (the launcher's
    ``--gdpo.*`` flags)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gdpo = settings.validate(self.args)
        if self.gdpo is not None:
            logger.warning(
                "gdpo-verl: OpenRLHF experience maker %s computes GDPO advantages over %s (openrlhf %s)",
                type(self).__name__,
                list(self.gdpo.reward_keys),
                shapes.openrlhf_version(),
            )

    @torch.no_grad()
    def make_experience_batch(self, rollout_samples):
        if self.gdpo is not None:
            require_components(rollout_samples, self.gdpo.reward_keys)  # before any model forward
        return super().make_experience_batch(rollout_samples)

    @torch.no_grad()
    def compute_advantages_and_returns(self, experiences):
        if self.gdpo is None:
            return super().compute_advantages_and_returns(experiences)
        args, cfg = self.strategy.args, self.gdpo
        sizes = [len(e.index) for e in experiences]
        positions = torch.tensor([i for e in experiences for i in e.index], dtype=torch.long)
        n_total, group_size = int(positions.numel()), int(args.rollout.n_samples_per_prompt)
        if n_total % group_size or not torch.equal(torch.sort(positions).values, torch.arange(n_total)):
            raise ValueError(
                f"GDPO: the rollout batch holds {n_total} samples at positions that are not 0..{n_total - 1} in "
                f"whole groups of --rollout.n_samples_per_prompt={group_size}; cannot group them by prompt"
            )
        # rows in rollout (prompt) order, as OpenRLHF's own group estimators see them
        order = torch.empty_like(positions)
        order[positions] = torch.arange(n_total)
        components = torch.stack([torch.cat([_column(e, k) for e in experiences]) for k in cfg.reward_keys], dim=1)
        lengths = torch.cat([e.action_mask.sum(dim=-1).reshape(-1) for e in experiences]).to(torch.float64)
        scalars, metrics = library.advantages(
            components[order], torch.arange(n_total) // group_size, lengths[order], cfg
        )
        per_experience = scalars[positions].split(sizes)

        for experience, scalar in zip(experiences, per_experience, strict=True):
            dtype = torch.promote_types(experience.rewards.dtype, torch.float32)
            # OpenRLHF's own shaping and returns, as for its group_norm estimator
            reward = compute_reward(
                scalar.to(dtype),
                self.kl_ctl.value,
                experience.kl,
                action_mask=experience.action_mask,
                reward_clip_range=args.reward.clip_range,
            )
            experience.returns = self.get_cumulative_returns(reward, experience.action_mask, args.algo.advantage.gamma)
            experience.advantages = experience.returns.clone()
            experience.info["return"] = reward.sum(dim=-1)
            experience.kl = None
            for key in cfg.reward_keys:  # raw values (NaN = missing) are logged NaN-aware as gdpo/<key>/*
                experience.info.pop(key, None)
            n = len(experience.index)
            for name, value in metrics.items():  # one value per sample: OpenRLHF's actor logs the sample mean
                experience.info[name] = torch.full((n,), float(value), dtype=torch.float32)
        return experiences
