"""GDPO and reward-manager checks of a composed verl config (no verl import)."""

from __future__ import annotations

import ast
import difflib
import importlib.util
import math
import os
from collections.abc import Mapping
from typing import Any

from gdpo_verl.check.report import Finding, err, info, warn
from gdpo_verl.plain_config import to_plain

MANAGER = "gdpo_multi"
SIGNATURE = "gdpo_signature"
EXTRA_KEYS = ("score", SIGNATURE, "gdpo_reward_failures")  # emitted by gdpo_multi besides the rewards
# Top-level algorithm keys this plugin reads (the `algorithm.gdpo` section is parsed by gdpo_verl.config).
OUR_ESTIMATORS = ("gdpo",)  # what gdpo_verl_plugins registers in verl's ADV_ESTIMATOR_REGISTRY


def manager_reward_names(section: Any) -> tuple[list[str], str | None]:
    """The reward names `gdpo_multi` will emit for `reward.gdpo_multi`, and an error message if it is invalid."""
    section = to_plain(section) or {}
    try:
        from gdpo_verl.rewards.manager import RewardConfigError, parse_config
    except ImportError:
        return _fallback_names(section), None
    try:
        return parse_config(section).names, None
    except RewardConfigError as e:
        return [], str(e)


def _fallback_names(section: Mapping[str, Any]) -> list[str]:
    from gdpo_verl.rewards.suites import SUITES

    names = [r["name"] for r in SUITES.get(str(section.get("suite")), [])]
    rewards = section.get("rewards") or []
    rewards = [{"name": k} for k in rewards] if isinstance(rewards, Mapping) else rewards
    names += [str(r["name"]) for r in rewards if isinstance(r, Mapping) and r.get("name") not in names]
    return names


def check_rewards(cfg: Any) -> list[Finding]:
    alg, reward = cfg.algorithm, cfg.reward
    estimator = str(alg.adv_estimator)
    manager = str(reward.reward_manager.name)
    out: list[Finding] = [info("estimator", f"adv_estimator={estimator}, reward manager={manager}")]
    out += check_estimator_name(estimator)
    out += unknown_gdpo_keys(alg)
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


def registered_estimators() -> list[str] | None:
    """verl's advantage-estimator names (its AdvantageEstimator enum and every register_adv_est("...") call in
    core_algos.py, read without importing verl) plus this plugin's; None when verl's source is not at hand."""
    spec = importlib.util.find_spec("verl")
    roots = spec.submodule_search_locations if spec is not None and spec.submodule_search_locations else []
    for root in roots:
        path = os.path.join(root, "trainer", "ppo", "core_algos.py")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
            return sorted({*_estimator_literals(tree), *OUR_ESTIMATORS})
    return None


def _estimator_literals(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "AdvantageEstimator":
            for item in node.body:
                if isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant):
                    names.add(str(item.value.value))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register_adv_est" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
    return names


def check_estimator_name(estimator: str) -> list[Finding]:
    """verl looks the name up only after the first rollout; an unknown one wastes the generation."""
    names = registered_estimators()
    if names is None or estimator in names:
        return []
    hint = difflib.get_close_matches(estimator, names, n=2, cutoff=0.6)
    did = f"; did you mean {' or '.join(hint)}?" if hint else ""
    return [
        err(
            "estimator",
            f"algorithm.adv_estimator={estimator} is not a registered advantage estimator "
            f"(verl fails only after the first rollout){did} Registered: {', '.join(names)}",
        )
    ]


def unknown_gdpo_keys(alg: Any) -> list[Finding]:
    """`+algorithm.gdpo*` keys this plugin does not read (a typo such as gdpo_reward_weigths), whatever the estimator;
    the same message the estimator stops with."""
    from gdpo_verl.config import unknown_algorithm_keys

    problem = unknown_algorithm_keys(to_plain(alg))
    return [err("unknown-key", problem)] if problem else []


def _check_gdpo(cfg: Any, names: list[str] | None, manager: str) -> list[Finding]:
    alg = cfg.algorithm
    n = int(cfg.actor_rollout_ref.rollout.n)
    group = []
    if n < 2:
        group.append(
            err(
                "gdpo",
                f"actor_rollout_ref.rollout.n={n}: GDPO normalizes each reward within a group of responses to the "
                "same prompt, so with fewer than 2 every advantage is 0; set rollout.n >= 2 (the paper uses 4-16)",
            )
        )
    from gdpo_verl.config import GDPOConfig, GDPOConfigError, unknown_algorithm_keys

    try:
        g = GDPOConfig.from_algorithm(alg)
    except GDPOConfigError as e:  # unknown keys are reported once, by unknown_gdpo_keys
        return group if str(e) == unknown_algorithm_keys(to_plain(alg)) else [*group, err("gdpo", str(e))]
    out = group + [
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
    out += _gdpo_consequences(cfg, g, manager)
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
        # The paper filtered on the summed reward; a legitimate choice, but it throws away signal GDPO can use.
        out.append(
            warn(
                "dapo",
                f"filter_groups.metric={metric} keeps a group only when {metric} varies within it, so it drops GDPO "
                "groups whose reward components vary but whose total is constant (e.g. one response correct but "
                "long, another wrong but short): GDPO gives those non-zero advantages. The paper filtered on the "
                f"summed reward; algorithm.filter_groups.metric={SIGNATURE} (emitted by {MANAGER}) keeps every "
                "group in which any component varies and is the recommended default",
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


def _gdpo_consequences(cfg: Any, g: Any, manager: str) -> list[Finding]:
    """Settings that legally turn the GDPO run into another experiment."""
    out: list[Finding] = []
    if not bool(cfg.algorithm.get("norm_adv_by_std_in_grpo", True)):
        out.append(
            warn(
                "gdpo",
                "algorithm.norm_adv_by_std_in_grpo=False turns off GDPO's per-reward std division for every reward "
                "(A_k = r_k - mean, the paper's 'w/o std' ablation): rewards with larger spread then dominate the "
                "sum. Remove it (verl's default is True), or for single rewards use "
                "+algorithm.gdpo.std_norm={key:false}",
            )
        )
    if manager != MANAGER:
        return out
    specs = manager_reward_specs(cfg.reward.get("gdpo_multi"))
    if not specs:
        return out
    score_weights = {s.name: s.weight for s in specs}
    if not g.weight_schedule:
        pairs_by_key = {
            k: (w, score_weights[k]) for k, w in zip(g.reward_keys, g.weights, strict=True) if k in score_weights
        }
        differ = {k: v for k, v in pairs_by_key.items() if not math.isclose(v[0], v[1])}
        if differ:
            pairs = ", ".join(f"{k}: {a:g} vs {b:g}" for k, (a, b) in differ.items())
            out.append(
                warn(
                    "weights",
                    f"algorithm.gdpo_reward_weights differ from the weights of reward.gdpo_multi's `score` ({pairs}): "
                    "verl's score, its reward logs, DAPO's `reward` metric and a GRPO run of the same recipe sum the "
                    "rewards with the manager's weights, so the GRPO arm optimizes another objective than this GDPO "
                    "arm; give both the same weights (examples/common.sh's multi_reward does)",
                )
            )
    out += _constant_rewards(cfg, specs, g.reward_keys)
    return out


def manager_reward_specs(section: Any) -> list[Any]:
    """The manager's parsed reward specs (name, fn, kwargs, weight, ...), or [] when they cannot be parsed."""
    try:
        from gdpo_verl.rewards.manager import RewardConfigError, parse_config
    except ImportError:
        return []
    try:
        return list(parse_config(to_plain(section) or {}).rewards)
    except RewardConfigError:
        return []


def _constant_rewards(cfg: Any, specs: list[Any], keys: Any) -> list[Finding]:
    """A length-limit reward whose limit is at least the longest response the rollout can produce is always 1."""
    try:
        from gdpo_verl.rewards.length import length
        from gdpo_verl.rewards.suites import resolve
    except ImportError:
        return []
    import inspect

    longest = int(cfg.actor_rollout_ref.rollout.response_length)
    default = inspect.signature(length).parameters["max_tokens"].default
    out = []
    for spec in specs:
        try:
            fn = resolve(spec.fn)
        except Exception:  # reported by the manager's own validation
            continue
        if fn is not length or spec.name not in keys:
            continue
        limit = int(spec.kwargs.get("max_tokens", default))
        if limit < longest:
            continue
        why = (
            f"reward {spec.name!r} ({spec.fn}, max_tokens={limit}) is 1 for every response: the rollout stops at "
            f"actor_rollout_ref.rollout.response_length={longest} tokens, so no response can exceed the limit"
        )
        if spec.condition is not None:
            effect = (
                f"; conditioned on {spec.condition.on!r}, it equals that reward's pass/fail: a copy of "
                f"{spec.condition.on!r} that doubles its weight, not a length constraint"
            )
        else:
            effect = ". Its group std is 0 and its advantage always 0: the run is silently a run without it"
        fix = f". Lower max_tokens below {longest} (the paper: 4000 with 8000-token responses) or raise the length"
        out.append(warn("reward", why + effect + fix))
    return out
