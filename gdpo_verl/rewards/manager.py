"""The multi-reward manager's logic, free of verl: config, running the reward functions, conditions, signature.

Per sample it returns every configured reward (NaN when its call failed or timed out), ``score`` (weighted sum of
the components after conditioning, NaN counted as 0), ``gdpo_signature`` (a hash of the component vector, for
``algorithm.filter_groups.metric``) and ``gdpo_reward_failures`` (how many components of this sample are NaN
because of an error, a timeout or a NaN result). The verl adapter is ``gdpo_verl_plugins.reward_manager``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..conditions import Condition, parse_condition
from ..plain_config import to_plain
from . import code_rewards
from .pool import CallOutcome, RewardPool
from .suites import SUITES, check_fn_spec

logger = logging.getLogger("gdpo_verl.rewards")

SIGNATURE_KEY = "gdpo_signature"
FAILURES_KEY = "gdpo_reward_failures"
RESERVED = frozenset({"score", SIGNATURE_KEY, FAILURES_KEY})
_TOP_KEYS = {
    "suite", "rewards", "timeout_s", "max_workers", "allow_weak_sandbox", "max_code_nan_share", "code_nan_window"
}  # fmt: skip
_REWARD_KEYS = {"name", "fn", "kwargs", "weight", "condition", "timeout_s"}
# Built-ins whose worker mostly waits on a sandbox process: the default pool gets WAITING_FACTOR x the workers.
WAITING_FNS = frozenset({"code.pass_rate", "code.bug_free"})
WAITING_FACTOR = 2


class RewardConfigError(ValueError):
    """The ``reward.gdpo_multi`` section is invalid."""


@dataclass(frozen=True)
class RewardSpec:
    name: str
    fn: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    condition: Condition | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class MultiRewardConfig:
    rewards: tuple[RewardSpec, ...]
    timeout_s: float = 10.0
    max_workers: int | None = None
    allow_weak_sandbox: bool = False  # score code with the weak fallback sandbox (no namespaces)
    max_code_nan_share: float = 0.1  # stop when more of a window's code rewards are NaN (the sandbox fails)
    code_nan_window: int = 64  # samples per window

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rewards]


def _merge(suite: str | None, rewards: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if suite is not None and suite not in SUITES:
        raise RewardConfigError(f"reward.gdpo_multi.suite={suite!r}: use one of {sorted(SUITES)}")
    merged = [dict(r) for r in SUITES.get(suite or "", [])]
    for entry in rewards:
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise RewardConfigError(f"reward.gdpo_multi.rewards: every entry needs a 'name', got {entry!r}")
        unknown = set(entry) - _REWARD_KEYS
        if unknown:
            raise RewardConfigError(
                f"reward {entry['name']!r}: unknown fields {sorted(unknown)}; allowed: {sorted(_REWARD_KEYS)}"
            )
        same = next((m for m in merged if m["name"] == entry["name"]), None)
        if same is None:
            merged.append(dict(entry))
        else:
            same.update(entry)
    return merged


def _spec(entry: Mapping[str, Any]) -> RewardSpec:
    name = str(entry["name"])
    if "fn" not in entry or not entry["fn"]:
        raise RewardConfigError(
            f"reward {name!r}: 'fn' is required (a built-in like 'math.correct', "
            "'module:function' or '/path/file.py:function')"
        )
    fn = str(entry["fn"])
    try:
        check_fn_spec(fn)
    except ValueError as e:
        raise RewardConfigError(str(e)) from None
    cond = entry.get("condition")
    if cond is not None:
        try:  # ``on`` is checked against the other rewards once all are known (parse_config)
            cond = parse_condition(f"reward {name!r}: condition", name, cond)
        except ValueError as e:
            raise RewardConfigError(str(e)) from None
    weight = float(entry.get("weight", 1.0))
    timeout = entry.get("timeout_s")
    if not math.isfinite(weight):
        raise RewardConfigError(f"reward {name!r}: weight must be finite, got {weight}")
    return RewardSpec(
        name, fn, dict(entry.get("kwargs") or {}), weight, cond, None if timeout is None else float(timeout)
    )


def parse_config(section: Mapping[str, Any] | None) -> MultiRewardConfig:
    """Build the manager config from ``reward.gdpo_multi`` (a dict or DictConfig). Raises RewardConfigError."""
    section = to_plain(section) or {}
    if not isinstance(section, Mapping):
        raise RewardConfigError(f"reward.gdpo_multi must be a mapping, got {type(section).__name__}")
    unknown = set(section) - _TOP_KEYS
    if unknown:
        raise RewardConfigError(f"reward.gdpo_multi: unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    rewards = section.get("rewards") or []
    if isinstance(rewards, Mapping):  # also accept {name: {fn: ...}}
        rewards = [{"name": k, **(v or {})} for k, v in rewards.items()]
    specs = [_spec(e) for e in _merge(section.get("suite"), rewards)]
    if not specs:
        raise RewardConfigError("reward.gdpo_multi: no rewards; set reward.gdpo_multi.suite or .rewards")
    names = [s.name for s in specs]
    dup = sorted(n for n, c in Counter(names).items() if c > 1)
    if dup:
        raise RewardConfigError(f"reward.gdpo_multi: duplicate reward names {dup}")
    bad = sorted(set(names) & RESERVED)
    if bad:
        raise RewardConfigError(f"reward.gdpo_multi: reserved names {bad} (the manager emits {sorted(RESERVED)})")
    for s in specs:
        if s.condition is not None and (s.condition.on not in names or s.condition.on == s.name):
            raise RewardConfigError(
                f"reward {s.name!r}: condition on {s.condition.on!r}, which must be another "
                f"configured reward of {names}"
            )
    timeout = float(section.get("timeout_s", 10.0))
    workers = section.get("max_workers")
    if timeout <= 0 or (workers is not None and int(workers) < 0):
        raise RewardConfigError("reward.gdpo_multi: timeout_s must be > 0 and max_workers >= 0")
    nan_share, nan_window = float(section.get("max_code_nan_share", 0.1)), int(section.get("code_nan_window", 64))
    if not 0 <= nan_share <= 1 or nan_window < 1:
        raise RewardConfigError("reward.gdpo_multi: max_code_nan_share must be in [0, 1] and code_nan_window >= 1")
    return MultiRewardConfig(
        tuple(specs),
        timeout,
        None if workers is None else int(workers),
        bool(section.get("allow_weak_sandbox")),
        nan_share,
        nan_window,
    )


def validate_against_keys(cfg: MultiRewardConfig, reward_keys: Sequence[str] | None) -> None:
    """Raise if ``algorithm.gdpo_reward_keys`` (when set) is not exactly the set of configured reward names."""
    if reward_keys is None:
        return
    keys = [str(k) for k in to_plain(reward_keys)]
    if sorted(keys) != sorted(cfg.names):
        raise RewardConfigError(
            f"algorithm.gdpo_reward_keys={keys} does not match the rewards of reward.gdpo_multi={cfg.names}; "
            f"missing from the manager: {sorted(set(keys) - set(cfg.names))}, "
            f"not used by the estimator: {sorted(set(cfg.names) - set(keys))}"
        )


def signature(values: Sequence[float]) -> float:
    """Deterministic hash of a component vector as a float in [0, 1) (53 bits; NaN is its own value; -0.0 is 0.0)."""
    text = ",".join("nan" if math.isnan(v) else f"{v + 0.0:.12g}" for v in values)
    h = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
    return (h >> 11) / float(1 << 53)


def combine(cfg: MultiRewardConfig, raw: Mapping[str, float]) -> dict[str, float]:
    """Conditioning (on the other reward's raw value; NaN there -> NaN), weighted score, signature."""
    out: dict[str, float] = {}
    for s in cfg.rewards:
        v = float(raw[s.name])
        if s.condition is not None and not math.isnan(v):
            gate = float(raw[s.condition.on])
            v = math.nan if math.isnan(gate) else (v if gate >= s.condition.threshold else 0.0)
        out[s.name] = v
    comps = [out[s.name] for s in cfg.rewards]
    out["score"] = float(sum(s.weight * v for s, v in zip(cfg.rewards, comps, strict=True) if not math.isnan(v)))
    out[SIGNATURE_KEY] = signature(comps)
    return out


def default_workers(reward_loop_workers: int | None = None) -> int:
    """The machine's cores shared among verl's reward-loop workers (``reward.num_workers``), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, reward_loop_workers or 1))


class MultiRewardScorer:
    """Scores samples with every configured reward, concurrently in a process pool.

    ``max_workers``: the caller's share of the cores (``cfg.max_workers``, when set, wins and is taken as is).
    """

    def __init__(self, cfg: MultiRewardConfig, max_workers: int | None = None) -> None:
        self.cfg = cfg
        code_rewards.startup_check(cfg.rewards, cfg.allow_weak_sandbox, cfg.timeout_s)  # fail closed before rollouts
        self.code_nan = code_rewards.NanGuard(cfg.max_code_nan_share, cfg.code_nan_window)
        workers = cfg.max_workers
        if workers is None:  # the caller's share of the cores, more when the workers mostly wait on sandboxes
            workers = default_workers() if max_workers is None else max_workers
            if any(s.fn in WAITING_FNS for s in cfg.rewards):
                workers *= WAITING_FACTOR
        self.pool = RewardPool(workers)
        self.failures: Counter[tuple[str, str]] = Counter()
        self.calls = 0
        self._calls = [(s.fn, dict(s.kwargs)) for s in cfg.rewards]
        self._timeouts = [s.timeout_s or cfg.timeout_s for s in cfg.rewards]

    def submit(self, payload: Mapping[str, Any]) -> Future:
        """``payload``: data_source, solution_str, ground_truth, extra_info, num_tokens."""
        return self.pool.submit(dict(payload), self._calls, self._timeouts)

    def finish(self, outcomes: Sequence[CallOutcome]) -> dict[str, float]:
        """Turn the pool's outcomes into the emitted values, counting and logging failures."""
        raw: dict[str, float] = {}
        failed = 0
        code: list[tuple[str, str | None, str | None]] = []
        for s, o in zip(self.cfg.rewards, outcomes, strict=True):
            cause, msg = o.cause, o.message
            if cause is None and math.isnan(o.value):
                cause, msg = "NaN", "the reward function returned NaN"
            if cause is not None:
                failed += 1
                self.failures[(s.name, cause)] += 1
                if self.failures[(s.name, cause)] == 1:
                    logger.warning(
                        "reward %r (%s) -> NaN: %s: %s (logged once per reward and cause)", s.name, s.fn, cause, msg
                    )
            raw[s.name] = math.nan if cause is not None else o.value
            if s.fn in code_rewards.CODE_FNS:
                code.append((s.name, cause, msg))
        self.calls += 1
        self.code_nan.record(code)  # raises when the sandbox fails for too many samples
        out = combine(self.cfg, raw)
        out[FAILURES_KEY] = float(failed)
        return out

    async def score(self, payload: Mapping[str, Any]) -> dict[str, float]:
        return self.finish(await asyncio.wrap_future(self.submit(payload)))

    def score_sync(self, payload: Mapping[str, Any]) -> dict[str, float]:
        return self.finish(self.submit(payload).result())

    def close(self) -> None:
        self.pool.close()
