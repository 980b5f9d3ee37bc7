"""GDPO settings, read from verl's ``algorithm`` config section (a DictConfig, verl's AlgoConfig or a plain mapping).

Keys (verl's built-in gdpo uses the first two, so existing configs keep working):
    algorithm.gdpo_reward_keys     [k1, k2, ...]   reward components, as emitted by the reward function/manager
    algorithm.gdpo_reward_weights  [w1, w2, ...]   one per key, finite, not all zero (default all 1); an entry may be
                                                   a schedule over training steps (gdpo_verl.aggregations.schedules)
    algorithm.norm_adv_by_std_in_grpo              false: no std division in the group step (all rewards)
    algorithm.use_kl_in_reward                     see ``kl_in_reward``
    algorithm.gdpo.batch_norm      sample | token | none      (default sample, paper Eq. 6)
    algorithm.gdpo.eps_group       1e-6                       (Eq. 4)
    algorithm.gdpo.eps_batch       1e-6                       (Eq. 6)
    algorithm.gdpo.std_norm        {key: false}               per-reward std division (ANDed with the global flag)
    algorithm.gdpo.conditions      {target: {on: key, threshold: t}}   paper Eq. 8
    algorithm.gdpo.nan_policy      exclude | zero | error     (default exclude)
    algorithm.gdpo.kl_in_reward    raw | error                (default raw; only read when use_kl_in_reward)
    algorithm.gdpo.kl_weight       1.0                        weight of the KL term
    algorithm.gdpo.impl            gdpo_verl | verl           escape hatch: ``verl`` runs verl's built-in gdpo
    algorithm.gdpo.aggregation     gdpo | saturation | cv | group_variance | conflict | <entry point> | module:fn
    algorithm.gdpo.aggregation_args {...}                     the aggregation's options (docs/aggregations.md)
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gdpo_verl.aggregations.options import AggregationError, validate
from gdpo_verl.aggregations.schedules import parse_schedule
from gdpo_verl.conditions import Condition, parse_condition
from gdpo_verl.defaults import BATCH_NORM_MODES, DEFAULTS, IMPLS, KL_MODES, NAN_POLICIES, ConditionColumns
from gdpo_verl.plain_config import number, to_plain

OPTION_KEYS = tuple(DEFAULTS)
# The algorithm.gdpo* keys read from the algorithm section; any other `gdpo*` key there is a mistake.
ALGORITHM_KEYS = ("gdpo_reward_keys", "gdpo_reward_weights", "gdpo")


class GDPOConfigError(ValueError):
    """A GDPO setting is missing or does not fit."""


@dataclass(frozen=True)
class GDPOConfig:
    reward_keys: tuple[str, ...]
    weights: tuple[float, ...]
    batch_norm: str = DEFAULTS["batch_norm"]
    eps_group: float = DEFAULTS["eps_group"]
    eps_batch: float = DEFAULTS["eps_batch"]
    std_norm: tuple[bool, ...] = ()  # one per key
    conditions: tuple[Condition, ...] = ()
    nan_policy: str = DEFAULTS["nan_policy"]
    use_kl_in_reward: bool = False
    kl_in_reward: str = DEFAULTS["kl_in_reward"]
    kl_weight: float = DEFAULTS["kl_weight"]
    impl: str = DEFAULTS["impl"]
    aggregation: str = DEFAULTS["aggregation"]
    aggregation_args: tuple[tuple[str, Any], ...] = ()  # (option, value) pairs, a built-in's defaults filled in
    weight_schedule: tuple[Any, ...] = ()  # one Schedule per key when gdpo_reward_weights holds a schedule

    @property
    def condition_columns(self) -> tuple[ConditionColumns, ...]:
        """The conditions as the core takes them: (target column, gate column, threshold)."""
        col = self.reward_keys.index
        return tuple((col(c.target), col(c.on), c.threshold) for c in self.conditions)

    @classmethod
    def from_algorithm(cls, algorithm: Any) -> GDPOConfig:
        """Parse and validate; raises GDPOConfigError naming what is wrong."""
        alg = to_plain(algorithm) or {}
        if not isinstance(alg, Mapping):
            raise GDPOConfigError(f"algorithm config must be a mapping, got {type(alg).__name__}")
        problem = unknown_algorithm_keys(alg)
        if problem:
            raise GDPOConfigError(problem)
        keys = alg.get("gdpo_reward_keys")
        if not keys:
            raise GDPOConfigError(missing_reward_keys_message())
        if isinstance(keys, str) or not all(isinstance(k, str) and k for k in keys):
            raise GDPOConfigError(f"algorithm.gdpo_reward_keys must be a list of names, got {keys!r}")
        keys = tuple(keys)
        if len(set(keys)) != len(keys):
            raise GDPOConfigError(f"algorithm.gdpo_reward_keys has duplicates: {list(keys)}")
        weights, schedule = _scheduled_weights(keys, alg.get("gdpo_reward_weights"))
        opts = alg.get("gdpo") or {}
        if not isinstance(opts, Mapping):
            raise GDPOConfigError(f"algorithm.gdpo must be a mapping of options, got {opts!r}")
        _reject_unknown("algorithm.gdpo", opts, OPTION_KEYS, "option")
        opt = {**DEFAULTS, **opts}
        cfg = cls(
            reward_keys=keys,
            weights=weights,
            batch_norm=_choice("batch_norm", opt["batch_norm"], BATCH_NORM_MODES),
            eps_group=_number("eps_group", opt["eps_group"], lo=0.0),
            eps_batch=_number("eps_batch", opt["eps_batch"], lo=0.0),
            std_norm=_std_norm(keys, opt["std_norm"], bool(alg.get("norm_adv_by_std_in_grpo", True))),
            conditions=_conditions(keys, opt["conditions"]),
            nan_policy=_choice("nan_policy", opt["nan_policy"], NAN_POLICIES),
            use_kl_in_reward=bool(alg.get("use_kl_in_reward", False)),
            kl_in_reward=_kl_mode(opt["kl_in_reward"]),
            kl_weight=_number("kl_weight", opt["kl_weight"]),
            impl=_choice("impl", opt["impl"], IMPLS),
            **_aggregation(keys, opt["aggregation"], opt["aggregation_args"]),
            weight_schedule=schedule,
        )
        if cfg.use_kl_in_reward and cfg.kl_in_reward == "error":
            raise GDPOConfigError(
                "algorithm.use_kl_in_reward=True but algorithm.gdpo.kl_in_reward=error: GDPO refuses to drop the KL "
                "shaping. Use kl_in_reward=raw (added to the combined advantage), or move the KL into the loss "
                "(actor_rollout_ref.actor.use_kl_loss=True)."
            )
        return cfg


_parsed: dict[int, tuple[Any, GDPOConfig]] = {}


def parse_once(algorithm: Any) -> GDPOConfig:
    """:meth:`GDPOConfig.from_algorithm`, once per config object: verl hands the estimator the same ``algorithm``
    section at every step of a run. (The object is held, so its id is never reused for another one.)"""
    hit = _parsed.get(id(algorithm))
    if hit is not None and hit[0] is algorithm:
        return hit[1]
    cfg = GDPOConfig.from_algorithm(algorithm)
    _parsed[id(algorithm)] = (algorithm, cfg)
    return cfg


def missing_reward_keys_message() -> str:
    """What `gdpo-verl check` and the estimator say when adv_estimator=gdpo has no reward keys."""
    return (
        "GDPO needs algorithm.gdpo_reward_keys, the reward components your reward function returns, "
        "e.g. +algorithm.gdpo_reward_keys=[format,correct]. GDPO does not fall back to the summed score (that "
        "would be GRPO); for a single-reward run list it explicitly: +algorithm.gdpo_reward_keys=[score]"
    )


def did_you_mean(name: str, known: Iterable[str], prefix: str = "") -> str:
    """' (did you mean 'prefix.x'?)' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def unknown_message(section: str, given: Iterable[Any], known: tuple[str, ...], what: str = "key") -> str | None:
    """The error for names in ``given`` that ``known`` lacks (with a did-you-mean each), or None."""
    unknown = sorted(str(k) for k in given if k not in known)
    if not unknown:
        return None
    named = "; ".join(f"{section}.{k}{did_you_mean(k, known, section + '.')}" for k in unknown)
    return f"unknown {what} {named}; valid: {[f'{section}.{k}' for k in known]}"


def unknown_algorithm_keys(alg: Mapping[str, Any]) -> str | None:
    """The error for ``algorithm.gdpo*`` keys gdpo-verl does not read (a typo would otherwise be ignored), or None.
    Shared by the estimator and ``gdpo-verl check`` (which runs it whatever the estimator)."""
    return unknown_message("algorithm", [k for k in alg if str(k).startswith("gdpo")], ALGORITHM_KEYS)


def _reject_unknown(section: str, given: Iterable[Any], known: tuple[str, ...], what: str) -> None:
    problem = unknown_message(section, given, known, what)
    if problem:
        raise GDPOConfigError(problem)


def _number(name: str, value: Any, **bounds: Any) -> float:
    return number(f"algorithm.gdpo.{name}", value, GDPOConfigError, **bounds)


def _choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise GDPOConfigError(f"algorithm.gdpo.{name} must be one of {list(options)}, got {value!r}")
    return str(value)


def _kl_mode(value: Any) -> str:
    if value == "component":
        raise GDPOConfigError(
            "algorithm.gdpo.kl_in_reward=component was removed (it gave rollouts with every reward missing an "
            "advantage). Use kl_in_reward=raw (the KL shaping added to the combined advantage, the default) or put "
            "the KL in the loss (algorithm.use_kl_in_reward=False, actor_rollout_ref.actor.use_kl_loss=True)."
        )
    return _choice("kl_in_reward", value, KL_MODES)


def _weights(keys: tuple[str, ...], raw: Any) -> tuple[float, ...]:
    if raw is None:
        return (1.0,) * len(keys)
    if isinstance(raw, str | int | float) or len(raw) != len(keys):
        raise GDPOConfigError(
            f"algorithm.gdpo_reward_weights={list(raw) if not isinstance(raw, str | int | float) else raw!r} "
            f"does not give one weight per key of algorithm.gdpo_reward_keys={list(keys)}"
        )
    try:
        weights = tuple(float(w) for w in raw)
    except (TypeError, ValueError):
        raise GDPOConfigError(f"algorithm.gdpo_reward_weights must be numbers, got {list(raw)}") from None
    bad = [f"{k}={w}" for k, w in zip(keys, weights, strict=True) if not math.isfinite(w)]
    if bad:
        raise GDPOConfigError(f"algorithm.gdpo_reward_weights must be finite; got {', '.join(bad)}")
    if all(w == 0.0 for w in weights):
        raise GDPOConfigError(f"algorithm.gdpo_reward_weights are all zero for keys {list(keys)}: nothing to learn")
    return weights


def _std_norm(keys: tuple[str, ...], raw: Any, global_flag: bool) -> tuple[bool, ...]:
    per_key = dict.fromkeys(keys, True)
    if raw is not None:
        if isinstance(raw, Mapping):
            unknown = sorted(set(raw) - set(keys))
            if unknown:
                raise GDPOConfigError(f"algorithm.gdpo.std_norm names {unknown}, not in gdpo_reward_keys={list(keys)}")
            per_key.update({k: bool(v) for k, v in raw.items()})
        elif isinstance(raw, bool):
            per_key = dict.fromkeys(keys, raw)
        elif isinstance(raw, list | tuple) and len(raw) == len(keys):
            per_key = {k: bool(v) for k, v in zip(keys, raw, strict=True)}
        else:
            raise GDPOConfigError(f"algorithm.gdpo.std_norm={raw!r} must be a bool, a {{key: bool}} map or one per key")
    return tuple(global_flag and per_key[k] for k in keys)


def _conditions(keys: tuple[str, ...], raw: Any) -> tuple[Condition, ...]:
    if not raw:
        return ()
    if not isinstance(raw, Mapping):
        raise GDPOConfigError(f"algorithm.gdpo.conditions must map target -> {{on, threshold}}, got {raw!r}")
    out = []
    for target, spec in raw.items():
        if target not in keys:
            raise GDPOConfigError(f"algorithm.gdpo.conditions: {target!r} is not in gdpo_reward_keys={list(keys)}")
        try:
            out.append(parse_condition(f"algorithm.gdpo.conditions.{target}", target, spec, keys))
        except ValueError as e:
            raise GDPOConfigError(str(e)) from None
    return tuple(out)


# --- multi-reward aggregation (gdpo_verl.aggregations) ---------------------------------------------------------------
def _aggregation(keys: tuple[str, ...], name: Any, raw_args: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise GDPOConfigError(f"algorithm.gdpo.aggregation must be a name, got {name!r}")
    try:
        args = validate(name, raw_args, keys)
    except AggregationError as e:
        raise GDPOConfigError(f"algorithm.gdpo.aggregation={name!r}: {e}") from None
    return {"aggregation": name, "aggregation_args": tuple(args.items())}


def _scheduled_weights(keys: tuple[str, ...], raw: Any) -> tuple[tuple[float, ...], tuple[Any, ...]]:
    """(weights, ()) for constant weights; (weights at step 0, one Schedule per key) when an entry is a schedule."""
    if raw is None or isinstance(raw, str | int | float) or not any(isinstance(w, Mapping) for w in raw):
        return _weights(keys, raw), ()
    if len(raw) != len(keys):
        raise GDPOConfigError(
            f"algorithm.gdpo_reward_weights has {len(raw)} entries for gdpo_reward_keys={list(keys)}: one per key"
        )
    try:
        schedule = tuple(parse_schedule(k, w) for k, w in zip(keys, raw, strict=True))
    except AggregationError as e:
        raise GDPOConfigError(str(e)) from None
    return tuple(s.at(0) for s in schedule), schedule
