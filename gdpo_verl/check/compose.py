"""Compose a verl command line with verl's own Hydra config, on CPU, without importing verl.

Every override Hydra rejects becomes a readable finding (with a close-match suggestion); the rest still compose, so
one run reports every mistyped key at once.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from gdpo_verl.check.report import Finding, err, info, warn

DUMP_ENV = "GDPO_VERL_CHECK_DUMP"
DEFAULT_CONFIG = "ppo_trainer"
# Keys this project's plugin reads; they are not in verl's config and need a leading `+`.
PLUS_KEYS = ("algorithm.gdpo_reward_keys", "algorithm.gdpo_reward_weights", "algorithm.gdpo", "reward.gdpo_multi")


@dataclass
class Composed:
    cfg: Any  # DictConfig, or None when nothing composed
    config_name: str
    overrides: list[str]
    findings: list[Finding] = field(default_factory=list)


def verl_config_dir() -> str:
    """The installed verl's trainer/config folder (found without importing verl: importing it costs seconds)."""
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("verl is not installed in this environment; `gdpo-verl check` needs verl's Hydra config")
    for root in spec.submodule_search_locations:
        path = os.path.join(root, "trainer", "config")
        if os.path.isfile(os.path.join(path, "ppo_trainer.yaml")):
            return path
    raise RuntimeError("verl is installed but has no trainer/config/ppo_trainer.yaml")


def split_cli(args: Sequence[str]) -> tuple[str, str | None, list[str], list[Finding]]:
    """Separate Hydra's own flags (--config-name, --config-path) from the overrides."""
    name, path, overrides, findings = DEFAULT_CONFIG, None, [], []
    it = iter(args)
    for arg in it:
        flag, eq, value = arg.partition("=")
        if flag in ("--config-name", "-cn", "--config-path", "-cp"):
            value = value if eq else next(it, "")
            if flag in ("--config-name", "-cn"):
                name = value.removesuffix(".yaml")
            else:
                path = value
        elif arg.startswith("-"):
            findings.append(warn("hydra", f"ignored command-line flag {arg!r} (not an override)"))
        elif arg.strip():
            overrides.append(arg)
    return name, path, overrides, findings


def dump_script(script: str, script_args: Sequence[str] = (), env: dict[str, str] | None = None) -> list[str]:
    """Run an example script with GDPO_VERL_CHECK_DUMP set and return the argument list it would launch with."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "args.txt")
        run_env = {**os.environ, **(env or {}), DUMP_ENV: out}
        proc = subprocess.run(
            ["bash", script, *script_args], env=run_env, capture_output=True, text=True, timeout=60, check=False
        )
        if proc.returncode != 0 or not os.path.isfile(out):
            raise RuntimeError(
                f"{script} did not write its arguments (exit {proc.returncode}); does it launch through "
                f"examples/common.sh's launch function?\n{proc.stderr.strip()[-2000:]}"
            )
        with open(out, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f if line.strip()]


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _parse_errors(overrides: Sequence[str]) -> tuple[list[str], list[Finding]]:
    """Hydra's override grammar, one override at a time, so a syntax error names its override."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, good, findings = OverridesParser.create(), [], []
    for ov in overrides:
        try:
            parser.parse_overrides([ov])
            good.append(ov)
        except Exception as e:  # hydra raises OverrideParseException
            msg = str(e).split("\nSee https://")[0].strip()
            findings.append(err("syntax", f"{ov!r} is not a valid Hydra override: {msg}"))
    return good, findings


_KEY_PATTERNS = (
    re.compile(r"Could not override '([^']+)'"),
    re.compile(r"An item is already at '([^']+)'"),
    re.compile(r"Could not delete from config\. '([^']+)' does not exist"),
    re.compile(r"Could not find '([^'/]+)/[^']*'"),
    re.compile(r"Could not load '([^'/]+)/[^']*'"),
)


def _culprit(message: str, overrides: Sequence[str]) -> int | None:
    for pattern in _KEY_PATTERNS:
        m = pattern.search(message)
        if m:
            key = m.group(1)
            for i, ov in enumerate(overrides):
                if _override_key(ov) == key:
                    return i
    return None


def _explain(override: str, message: str, megatron: bool = False) -> str:
    key = _override_key(override)
    if "megatron" in key.split(".") and not megatron and "Could not override" in message:
        return (
            f"{override!r}: {key} exists only with the Megatron engine; add model_engine=megatron to the command "
            "line (verl's default engine is FSDP, model_engine=dp)"
        )
    if "An item is already at" in message:
        return f"{override!r}: {key} already exists in verl's config; drop the leading '+' (or use '++')"
    if "Could not delete" in message:
        return f"{override!r}: {key} does not exist, nothing to delete"
    if "Could not find" in message or "Could not load" in message:
        options = re.findall(r"^\t(\S+)$", message.split("Config search path")[0], flags=re.M)
        return f"{override!r}: no such option for config group {key!r}; available: {', '.join(options) or '?'}"
    if any(key == k or key.startswith(k + ".") for k in PLUS_KEYS) and not override.startswith("+"):
        return f"{override!r}: {key} is not in verl's config; add it with a leading '+': +{override}"
    return f"{override!r}: unknown key {key} (not in verl's config)"


def leaf_paths(node: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted path of a DictConfig (sections and leaves), without resolving interpolations."""
    from omegaconf import DictConfig

    if isinstance(node, DictConfig):
        for k in node.keys():
            path = f"{prefix}{k}"
            yield path
            yield from leaf_paths(node._get_node(k), path + ".")


def suggest(key: str, paths: Sequence[str], n: int = 2) -> list[str]:
    """Close matches: same leaf name elsewhere first, then close names in the same section, then anywhere."""
    leaf = key.rsplit(".", 1)[-1]
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    same_leaf = [p for p in paths if p.rsplit(".", 1)[-1] == leaf and p != key]
    same_leaf.sort(key=lambda p: -difflib.SequenceMatcher(None, p, key).ratio())
    siblings = [p for p in paths if (p.rsplit(".", 1)[0] if "." in p else "") == parent]
    near_sibling = difflib.get_close_matches(key, siblings, n=n, cutoff=0.75)
    anywhere = difflib.get_close_matches(key, paths, n=n, cutoff=0.8)
    out: list[str] = []
    for p in same_leaf[:n] + near_sibling + anywhere:
        if p not in out:
            out.append(p)
    return out[:n]


class Composer:
    """One Hydra initialization per config folder, reused for every compose (tests compose dozens of scripts)."""

    def __init__(self, config_dir: str | None = None) -> None:
        self.config_dir = os.path.abspath(config_dir or verl_config_dir())

    def _compose(self, name: str, overrides: list[str]) -> Any:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        gh = GlobalHydra.instance()
        if not gh.is_initialized() or getattr(self, "_owned", None) is not gh.hydra:
            gh.clear()
            initialize_config_dir(config_dir=self.config_dir, version_base=None)
            self._owned = gh.hydra
        return compose(config_name=name, overrides=overrides)

    def compose(self, args: Sequence[str]) -> Composed:
        name, path, overrides, findings = split_cli(args)
        if path and os.path.abspath(path) != self.config_dir and path != "config":
            findings.append(warn("hydra", f"--config-path={path} ignored; composing verl's own config"))
        good, syntax = _parse_errors(overrides)
        findings += syntax
        skipped = [ov for ov in good if _override_key(ov).startswith("hydra.")]
        if skipped:
            findings.append(info("hydra", f"not checked (Hydra's own settings): {' '.join(skipped)}"))
        good = [ov for ov in good if ov not in skipped]
        rejected: list[tuple[str, str]] = []
        cfg = None
        for _ in range(len(good) + 1):
            try:
                cfg = self._compose(name, good)
                break
            except Exception as e:
                message = str(e)
                i = _culprit(message, good)
                if i is None:
                    findings.append(err("hydra", f"verl's config does not compose: {message}"))
                    return Composed(None, name, overrides, findings)
                rejected.append((good.pop(i), message))
        megatron = name == "ppo_megatron_trainer" or "model_engine=megatron" in [ov.lstrip("+") for ov in good]
        if rejected:
            legacy = ("reward_model", "custom_reward_function")  # composed but ignored by verl 0.9.x
            paths = [p for p in leaf_paths(cfg) if not p.startswith(legacy)] if cfg is not None else []
            for ov, message in rejected:
                text = _explain(ov, message, megatron)
                hint = suggest(_override_key(ov), paths) if "unknown key" in text else []
                topic = "unknown-key" if "unknown key" in text or "leading '+'" in text else "override"
                topic = "backend" if "model_engine=megatron" in text else topic
                findings.append(err(topic, text + (f"; did you mean {' or '.join(hint)}?" if hint else "")))
        if cfg is not None:
            findings += _resolve_errors(cfg)
        return Composed(cfg, name, overrides, findings)


def _resolve_errors(cfg: Any) -> list[Finding]:
    from omegaconf import OmegaConf

    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except Exception as e:
        return [err("hydra", f"an interpolation does not resolve: {str(e).splitlines()[0]}")]
    return []
