"""``reward.reward_manager.name=gdpo_multi`` -> :mod:`gdpo_verl.rewards.manager` inside verl's reward loop.

``install()`` only arranges for the class to be registered when verl imports its reward-manager registry
(``verl.experimental.reward_loop.reward_manager``); nothing heavy is imported before that. Applied when that module
has the shapes :data:`gdpo_verl_plugins.verl_shapes.REWARD_MANAGER` names, whatever verl's version.

verl hands the manager the whole trainer config: the section ``reward.gdpo_multi`` configures it, and
``algorithm.gdpo_reward_keys`` (when set) is checked against the reward names at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from types import ModuleType
from typing import Any

from gdpo_verl_plugins.post_import import when_imported
from gdpo_verl_plugins.verl_shapes import REWARD_MANAGER, applies

logger = logging.getLogger("gdpo_verl")
NAME = "gdpo_multi"
REGISTRY_MODULE = "verl.experimental.reward_loop.reward_manager"
_registered: dict[str, type] = {}


def install() -> None:
    when_imported(REGISTRY_MODULE, _register)


def _register(module: ModuleType) -> None:
    if not applies(REWARD_MANAGER, module):
        return
    if NAME in _registered:
        return
    cls = make_manager_class()
    module.register(NAME)(cls)
    _registered[NAME] = cls


def manager_config(config: Any) -> tuple[Any, Any, int | None]:
    """(reward.gdpo_multi section, algorithm.gdpo_reward_keys, reward.num_workers) from verl's full config."""
    reward = config.get("reward") if hasattr(config, "get") else None
    algorithm = config.get("algorithm") if hasattr(config, "get") else None
    section = reward.get("gdpo_multi") if reward is not None else None
    keys = algorithm.get("gdpo_reward_keys") if algorithm is not None else None
    workers = reward.get("num_workers") if reward is not None else None
    return section, keys, workers


def make_manager_class() -> type:
    """Build the verl RewardManagerBase subclass (verl imported here, when verl itself has loaded it)."""
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

    from gdpo_verl.rewards.manager import MultiRewardScorer, default_workers, parse_config, validate_against_keys

    class GDPOMultiRewardManager(RewardManagerBase):
        """Every configured reward per sample, plus ``score``, ``gdpo_signature`` and ``gdpo_reward_failures``."""

        def __init__(self, config, tokenizer, compute_score, reward_router_address=None, reward_model_tokenizer=None):
            super().__init__(config, tokenizer, compute_score)
            section, keys, n_workers = manager_config(config)
            cfg = parse_config(section)
            validate_against_keys(cfg, keys)
            custom = config.get("reward", {}).get("custom_reward_function", {}) or {}
            if custom.get("path"):
                logger.warning(
                    "gdpo_multi ignores reward.custom_reward_function (%s); list it in "
                    "reward.gdpo_multi.rewards as fn: '<path>:<function>' instead",
                    custom.get("path"),
                )
            self.scorer = MultiRewardScorer(cfg, default_workers(n_workers))
            self.reward_keys = cfg.names

        async def run_single(self, data) -> dict:
            item = data[-1]  # multi-output sessions: the final output is scored (like verl's naive manager)
            response_ids = item.batch["responses"]
            valid = int(item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
            ids = response_ids[:valid]
            loop = asyncio.get_running_loop()  # not self.loop: callers may drive us from another loop
            text = await loop.run_in_executor(None, lambda: self.tokenizer.decode(ids, skip_special_tokens=True))
            ntb = item.non_tensor_batch
            extra_info = dict(ntb.get("extra_info", None) or {})
            extra_info.update(dict(ntb.get("tool_extra_fields", None) or {}))  # as verl's naive manager does
            extra_info["num_turns"] = ntb.get("__num_turns__", None)
            payload = {
                "data_source": ntb.get("data_source"),
                "solution_str": text,
                "ground_truth": (ntb.get("reward_model") or {}).get("ground_truth"),
                "extra_info": extra_info,
                "num_tokens": valid,
            }
            out = await self.scorer.score(payload)
            return {"reward_score": out["score"], "reward_extra_info": out}

    GDPOMultiRewardManager.__qualname__ = GDPOMultiRewardManager.__name__
    return GDPOMultiRewardManager
