"""GDPO and reward-manager checks of a composed verl config (no verl import)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gdpo_verl.check.report import Finding, err, info, warn

MANAGER = "gdpo_multi"
SIGNATURE = "gdpo_signature"
EXTRA_KEYS = ("score", SIGNATURE, "gdpo_reward_failures")  # emitted by gdpo_multi besides the rewards
# Used only when gdpo_verl.rewards cannot be imported; the source of truth is gdpo_verl.rewards.suites.SUITES.
_FALLBACK_SUITES = {
    "tool": ["format", "correctness"],
    "math": ["correct", "length"],
    "code": ["pass_rate", "length", "bug_free"],
    "gsm8k": ["correct", "integer", "format"],
}


def _plain(node: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def manager_reward_names(section: Any) -> tuple[list[str], str | None]:
    """The reward names `gdpo_multi` will emit for `reward.gdpo_multi`, and an error message if it is invalid."""
    section = _plain(section) or {}
    try:
        from gdpo_verl.rewards.manager import RewardConfigError, parse_config
    except ImportError:
        return _fallback_names(section), None
    try:
        return parse_config(section).names, None
    except RewardConfigError as e:
        return [], str(e)


def _fallback_names(section: Mapping[str, Any]) -> list[str]:
    try:
        from gdpo_verl.rewards.suites import SUITES

        suites = {k: [r["name"] for r in v] for k, v in SUITES.items()}
    except ImportError:
        suites = _FALLBACK_SUITES
    names = list(suites.get(str(section.get("suite")), []))
    rewards = section.get("rewards") or []
    rewards = [{"name": k} for k in rewards] if isinstance(rewards, Mapping) else rewards
    names += [str(r["name"]) for r in rewards if isinstance(r, Mapping) and r.get("name") not in names]
    return names


def check_rewards(cfg: Any) -> list[Finding]:
    alg, reward = cfg.algorithm, cfg.reward
    estimator = str(alg.adv_estimator)
    manager = str(reward.reward_manager.name)
    out: list[Finding] = [info("estimator", f"adv_estimator={estimator}, reward manager={manager}")]
    names: list[str] | None = None
    if manager == MANAGER:
        names, problem = manager_reward_names(reward.get("gdpo_multi"))
        if problem:
            out.append(err("reward", f"reward.gdpo_multi: {problem}"))
        else:
            out.append(info("reward", f"gdpo_multi emits {names} + {list(EXTRA_KEYS)}"))
    elif reward.get("gdpo_multi") is not None:
        out.append(warn("reward", f"reward.gdpo_multi is set but reward.reward_manager.name={manager}: unused"))
    if estimator == "gdpo":
        out += _check_gdpo(cfg, names, manager)
    elif alg.get("gdpo_reward_keys") is not None or alg.get("gdpo") is not None:
        out.append(info("gdpo", f"GDPO keys are set but unused: adv_estimator={estimator}"))
    out += _check_filter_groups(cfg, estimator, manager, names)
    return out


def _check_gdpo(cfg: Any, names: list[str] | None, manager: str) -> list[Finding]:
    alg = cfg.algorithm
    try:
        from gdpo_verl.config import GDPOConfig, GDPOConfigError
    except ImportError:
        return [warn("gdpo", "gdpo_verl.config is not available: GDPO settings not checked")]
    try:
        g = GDPOConfig.from_algorithm(alg)
    except GDPOConfigError as e:
        return [err("gdpo", str(e))]
    out = [
        info(
            "gdpo",
            f"reward keys {list(g.reward_keys)}, weights {list(g.weights)}, batch_norm={g.batch_norm}, impl={g.impl}",
        )
    ]
    use_kl = bool(alg.use_kl_in_reward)
    if use_kl:
        out.append(info("kl", f"KL in reward: GDPO applies it with kl_in_reward={g.kl_in_reward} (not dropped)"))
    if g.impl == "verl":
        if use_kl:
            out.append(err("kl", "impl=verl (verl's built-in gdpo) silently drops use_kl_in_reward"))
        if bool(cfg.trainer.use_v1):
            out.append(err("gdpo", "impl=verl: verl 0.9.1's built-in gdpo fails on the V1 trainer (no prompts)"))
    if names and sorted(names) != sorted(g.reward_keys):
        missing, unused = sorted(set(g.reward_keys) - set(names)), sorted(set(names) - set(g.reward_keys))
        out.append(
            err(
                "reward",
                f"algorithm.gdpo_reward_keys={list(g.reward_keys)} but reward.gdpo_multi emits {names}: "
                f"missing from the manager {missing}, not used by the estimator {unused}",
            )
        )
    if manager != MANAGER:
        custom = cfg.reward.custom_reward_function.get("path")
        need = f"the reward function must return a dict with 'score' and {list(g.reward_keys)} for every sample"
        if custom:
            out.append(info("reward", f"reward keys not checked (manager {manager}): {need}"))
        else:
            out.append(
                warn(
                    "reward",
                    f"manager {manager} with verl's default scorer returns one score, no components; {need} "
                    f"(or use reward.reward_manager.name={MANAGER})",
                )
            )
    return out


def _check_filter_groups(cfg: Any, estimator: str, manager: str, names: list[str] | None) -> list[Finding]:
    fg = cfg.algorithm.get("filter_groups")
    if fg is None or not bool(fg.get("enable", False)):
        return []
    metric = str(fg.get("metric"))
    out: list[Finding] = [info("dapo", f"dynamic sampling on, groups kept when {metric} varies")]
    if not bool(cfg.trainer.use_v1):
        out.append(warn("dapo", "filter_groups.enable=True is ignored by verl 0.9.1's legacy trainer (use_v1=false)"))
    if estimator == "gdpo" and metric != SIGNATURE:
        out.append(
            err(
                "dapo",
                f"filter_groups.metric={metric} drops GDPO groups whose reward components vary but whose total is "
                f"constant; use algorithm.filter_groups.metric={SIGNATURE} (emitted by reward manager {MANAGER})",
            )
        )
    if metric == SIGNATURE and manager != MANAGER:
        out.append(err("dapo", f"filter_groups.metric={SIGNATURE} needs reward.reward_manager.name={MANAGER}"))
    if manager == MANAGER and names is not None and metric != "reward" and metric not in [*names, *EXTRA_KEYS]:
        out.append(
            err(
                "dapo",
                f"filter_groups.metric={metric} is not emitted by {MANAGER} (it emits {names + list(EXTRA_KEYS)}); "
                "the V1 replay buffer would fail with 'Finished groups are missing DAPO metric'",
            )
        )
    return out
