"""GDPO settings on OpenRLHF's command line: ``--gdpo.<name>`` flags -> the verl-shaped ``algorithm`` section that
gdpo_verl validates (same checks, same messages), plus the OpenRLHF settings GDPO cannot honour.

Flags (values: JSON where it parses, else the plain string):
    --gdpo.reward_keys correct,format        algorithm.gdpo_reward_keys (required)
    --gdpo.reward_weights 1,0.5              algorithm.gdpo_reward_weights (default all 1)
    --gdpo.<option> VALUE                    algorithm.gdpo.<option>, e.g. --gdpo.batch_norm none,
                                             --gdpo.conditions '{"length": {"on": "correct", "threshold": 1}}'
OpenRLHF hierarchizes them into ``args.gdpo``, which travels to the trainer inside ``strategy.args``.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any

from gdpo_verl_plugins.openrlhf import library

ESTIMATOR = "gdpo"
KEYS_FLAG, WEIGHTS_FLAG = "reward_keys", "reward_weights"
# algorithm.gdpo options that mean nothing on OpenRLHF, and why
NOT_ON_OPENRLHF = {
    "kl_in_reward": "OpenRLHF adds its KL penalty per token itself (--algo.kl.init_coef; --algo.kl.use_loss puts it "
    "in the loss); GDPO hands its advantage to that code unchanged",
    "kl_weight": "OpenRLHF adds its KL penalty per token itself: set its weight with --algo.kl.init_coef",
    "impl": "OpenRLHF has no built-in GDPO to switch to",
}
FLAG_NOTE = (
    "(OpenRLHF flags: --gdpo.reward_keys / --gdpo.reward_weights are algorithm.gdpo_reward_keys / "
    "algorithm.gdpo_reward_weights, --gdpo.<option> is algorithm.gdpo.<option>)"
)


class GDPOSettingsError(ValueError):
    """A GDPO setting, or an OpenRLHF setting GDPO cannot honour."""


def flag_names() -> tuple[str, ...]:
    return (KEYS_FLAG, WEIGHTS_FLAG, *library.OPTION_KEYS)


def add_arguments(parser: Any) -> None:
    """Add every ``--gdpo.*`` flag to OpenRLHF's argparse parser (all default None = not given)."""
    parser.add_argument(f"--gdpo.{KEYS_FLAG}", type=str, default=None, help="GDPO reward components, comma-separated")
    parser.add_argument(f"--gdpo.{WEIGHTS_FLAG}", type=str, default=None, help="one weight per key, comma-separated")
    for option in library.OPTION_KEYS:
        parser.add_argument(f"--gdpo.{option}", type=str, default=None, help=f"algorithm.gdpo.{option} (JSON or text)")


def given(args: Any) -> dict[str, str]:
    """The ``--gdpo.*`` flags set on hierarchized OpenRLHF args (``args.gdpo``)."""
    section = getattr(args, "gdpo", None)
    values = vars(section) if isinstance(section, SimpleNamespace) else dict(section or {})
    return {k: v for k, v in values.items() if v is not None}


def _value(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _listed(text: Any) -> Any:
    """'a,b' -> ['a', 'b']; a JSON list stays a list (schedules are mappings inside one)."""
    value = _value(text)
    if isinstance(value, str):
        return [_value(part.strip()) if part.strip() else part.strip() for part in value.split(",")]
    return value if isinstance(value, list) else [value]


def algorithm_section(flags: dict[str, str]) -> dict[str, Any]:
    """The verl-shaped ``algorithm`` mapping for gdpo_verl's parser; OpenRLHF applies its own KL, so
    ``use_kl_in_reward`` is always False here."""
    unknown = sorted(set(flags) - set(flag_names()))
    if unknown:
        valid = [f"--gdpo.{k}" for k in flag_names()]
        raise GDPOSettingsError(f"unknown GDPO setting(s) {[f'--gdpo.{k}' for k in unknown]}; valid: {valid}")
    for option, why in NOT_ON_OPENRLHF.items():
        if option in flags:
            raise GDPOSettingsError(f"--gdpo.{option} is not used on OpenRLHF: {why}. Remove --gdpo.{option}.")
    section: dict[str, Any] = {"use_kl_in_reward": False}
    if KEYS_FLAG in flags:
        keys = _value(flags[KEYS_FLAG])
        section["gdpo_reward_keys"] = [k.strip() for k in keys.split(",")] if isinstance(keys, str) else keys
    if WEIGHTS_FLAG in flags:
        section["gdpo_reward_weights"] = _listed(flags[WEIGHTS_FLAG])
    options = {k: _value(v) for k, v in flags.items() if k in library.OPTION_KEYS}
    if options:
        section["gdpo"] = options
    return section


def config_from_args(args: Any) -> library.GDPOConfig:
    """Parse and validate the GDPO settings of hierarchized OpenRLHF args; raises naming the flag concerned."""
    try:
        cfg = library.parse(algorithm_section(given(args)))
    except library.GDPOConfigError as exc:
        raise GDPOSettingsError(f"{exc} {FLAG_NOTE}") from None
    if cfg.weight_schedule:
        raise GDPOSettingsError(
            "--gdpo.reward_weights holds a schedule over training steps; OpenRLHF's experience maker is not given "
            "the training step, so a schedule cannot be followed there. Give constant weights (or use verl)."
        )
    return cfg


def check_openrlhf_args(args: Any) -> None:
    """OpenRLHF settings that would change or void GDPO's advantage: refused before the run starts."""
    problems = []
    if args.rollout.n_samples_per_prompt < 2:
        problems.append(
            f"--rollout.n_samples_per_prompt={args.rollout.n_samples_per_prompt}: GDPO normalizes each reward within "
            "the rollouts of a prompt, so every advantage would be 0; use 2 or more"
        )
    if not math.isclose(float(args.algo.advantage.gamma), 1.0):
        problems.append(
            f"--algo.advantage.gamma={args.algo.advantage.gamma}: GDPO's advantage is an outcome advantage given to "
            "every token (gamma 1, as OpenRLHF's group_norm); remove the flag"
        )
    if getattr(args.algo.advantage, "no_std_norm", False):
        problems.append(
            "--algo.advantage.no_std_norm does not act on GDPO; for no std division use --gdpo.std_norm false "
            "(or per reward: --gdpo.std_norm '{\"format\": false}')"
        )
    for flag, value in (
        ("--reward.overlong_buffer_len", getattr(args.reward, "overlong_buffer_len", None)),
        ("--reward.stop_properly_penalty_coef", getattr(args.reward, "stop_properly_penalty_coef", None)),
    ):
        if value is not None:
            problems.append(
                f"{flag}={value} changes OpenRLHF's summed reward, which GDPO does not read; make the length "
                "penalty a reward component instead (e.g. a 'length' key, with --gdpo.conditions to gate it)"
            )
    if not (getattr(args.reward, "remote_url", None) or getattr(args.train, "agent_func_path", None)):
        problems.append(
            "no reward function: GDPO reads the reward components from the reward function's extra_logs; a reward "
            "model gives one score. Pass --reward.remote_url <reward_func.py or URL> or --train.agent_func_path"
        )
    if problems:
        raise GDPOSettingsError("GDPO on OpenRLHF cannot run with: " + "; ".join(problems))


def validate(args: Any) -> library.GDPOConfig | None:
    """Everything checked before Ray starts. None when the estimator is not gdpo (then no --gdpo.* flag may be set)."""
    if args.algo.advantage.estimator != ESTIMATOR:
        flags = given(args)
        if flags:
            raise GDPOSettingsError(
                f"--gdpo.* flags {sorted(flags)} are set but --algo.advantage.estimator is "
                f"{args.algo.advantage.estimator!r}: they would be ignored. Add --algo.advantage.estimator gdpo."
            )
        return None
    cfg = config_from_args(args)
    check_openrlhf_args(args)
    return cfg
