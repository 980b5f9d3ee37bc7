"""``reward.reward_manager.name=gdpo_multi`` -> :mod:`gdpo_verl.rewards.manager` inside verl's reward loop.

``install()`` only arranges for the class to be registered when verl imports its reward-manager registry
(``verl.experimental.reward_loop.reward_manager``); nothing heavy is imported before that. Applied when that module
has the shapes :data:`gdpo_verl_plugins.verl_shapes.REWARD_MANAGER` names, whatever verl's version.

verl hands the manager the whole trainer config: the section ``reward.gdpo_multi`` configures it, and
``algorithm.gdpo_reward_keys`` (when set) is checked against the reward names at start-up. Settings the manager
cannot honour (a reward model, a custom reward function) are refused on the driver when verl builds its
``RewardLoopManager`` (before any reward model starts or rollout runs), and again in every manager.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from types import ModuleType
from typing import Any

from .patching import wrap_once
from .post_import import when_imported
from .verl_shapes import REWARD_LOOP_GUARD, REWARD_MANAGER, applies, when_shaped

logger = logging.getLogger("gdpo_verl")
NAME = "gdpo_multi"
REGISTRY_MODULE = "verl.experimental.reward_loop.reward_manager"
_registered: dict[str, type] = {}


def install() -> None:
    when_imported(REGISTRY_MODULE, _register)
    when_shaped(REWARD_LOOP_GUARD, _guard_loop_manager)  # RewardLoopManager: built on the driver at start


def _selected(config: Any) -> bool:
    reward = config.get("reward") if hasattr(config, "get") else None
    manager = (reward.get("reward_manager") if reward is not None else None) or {}
    return manager.get("name") == NAME and manager.get("source", "register") == "register"


def _guard_loop_manager(module: ModuleType) -> None:
    """Check gdpo_multi's settings when verl's RewardLoopManager is built (driver side, before any rollout)."""

    def wrap(original):
        @functools.wraps(original)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            config = kwargs.get("config", args[0] if args else None)
            if config is not None and _selected(config):
                refuse_unused_reward_settings(config)
            original(self, *args, **kwargs)

        return __init__

    wrap_once(module.RewardLoopManager, "__init__", wrap)


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


def response_ids(item: Any) -> Any:
    """The response's own token ids (no padding) of one verl ``DataProtoItem``.

    Multi-output agent-loop sessions are scored on a batch whose rows are padded independently (prompts, responses
    and the joint attention mask each to their own longest row), so the tail of ``attention_mask`` is not the
    response's: verl carries each output's ``response_len`` there. Elsewhere the response part of the attention mask
    (after the prompt's width) marks the real tokens, wherever the padding sits.
    """
    responses = item.batch["responses"]
    length = item.non_tensor_batch.get("response_len")
    if length is not None:
        return responses[: int(length)]
    mask = item.batch["attention_mask"]
    start = item.batch["prompts"].shape[-1] if "prompts" in item.batch.keys() else mask.shape[-1] - responses.shape[-1]
    return responses[mask[start : start + responses.shape[-1]].bool()]


def refuse_unused_reward_settings(config: Any) -> None:
    """Stop at manager start on reward settings gdpo_multi cannot honour.

    A reward model: with ``reward.reward_model.enable`` verl sends every sample to the model (or, with a custom
    reward function, to that function through this manager, the model unused), so the components never exist.
    ``reward.custom_reward_function``: this manager runs only the functions of ``reward.gdpo_multi``.
    """
    from gdpo_verl.rewards.manager import RewardConfigError

    reward = config.get("reward") if hasattr(config, "get") else None
    if reward is None:
        return
    model = reward.get("reward_model") or {}
    if model.get("enable"):
        raise RewardConfigError(
            "reward.reward_manager.name=gdpo_multi does not support a reward model: with "
            "reward.reward_model.enable=True verl scores every sample with the model and the GDPO reward components "
            "are never computed. Set reward.reward_model.enable=False and list your rewards in "
            "reward.gdpo_multi.rewards, or use another reward manager for a model-scored run."
        )
    custom = reward.get("custom_reward_function") or {}
    if custom.get("path"):
        raise RewardConfigError(
            f"reward.reward_manager.name=gdpo_multi does not run reward.custom_reward_function ({custom.get('path')}): "
            "list the function in reward.gdpo_multi.rewards as {name: <key>, fn: '<path>:<function>'} and unset "
            "reward.custom_reward_function.path"
        )


def make_manager_class() -> type:
    """Build the verl RewardManagerBase subclass (verl imported here, when verl itself has loaded it)."""
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

    from gdpo_verl.rewards.manager import MultiRewardScorer, default_workers, parse_config, validate_against_keys

    class GDPOMultiRewardManager(RewardManagerBase):
        """Every configured reward per sample, plus ``score``, ``gdpo_signature`` and ``gdpo_reward_failures``."""

        def __init__(self, config, tokenizer, compute_score, reward_router_address=None, reward_model_tokenizer=None):
            super().__init__(config, tokenizer, compute_score)
            refuse_unused_reward_settings(config)
            section, keys, n_workers = manager_config(config)
            cfg = parse_config(section)
            validate_against_keys(cfg, keys)
            self.scorer = MultiRewardScorer(cfg, default_workers(n_workers))
            self.reward_keys = cfg.names

        async def run_single(self, data) -> dict:
            item = data[-1]  # multi-output sessions: the final output is scored (like verl's naive manager)
            ids = response_ids(item)
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
                "num_tokens": int(ids.shape[-1]),
            }
            out = await self.scorer.score(payload)
            return {"reward_score": out["score"], "reward_extra_info": out}

    GDPOMultiRewardManager.__qualname__ = GDPOMultiRewardManager.__name__
    return GDPOMultiRewardManager
