"""ci/reference_gdpo.py, the GPU regression's independent float64 GDPO: it imports nothing of gdpo_verl (or torch),
and it agrees with the estimator on random batches with missing values, conditions, KL shaping, per-reward std
switches and every batch-normalization mode; the exact check works from a V1-style dump (scores only)."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    sys.path.insert(0, str(ROOT / "ci"))
    try:
        spec = importlib.util.spec_from_file_location(f"ci_{name}", ROOT / "ci" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "ci"))


def test_reference_shares_no_code_with_the_estimator() -> None:
    for name in ("reference_gdpo", "recompute_advantages"):
        tree = ast.parse((ROOT / "ci" / f"{name}.py").read_text())
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not roots & {"gdpo_verl", "gdpo_verl_plugins", "torch", "numpy"}, (name, roots)


def _batch(rng: random.Random, groups: int, size: int, keys: int, missing: float):
    rows, labels, lengths, kl = [], [], [], []
    for g in range(groups):
        for _ in range(size):
            rows.append([None if rng.random() < missing else float(rng.choice([0, 0.5, 1, 1])) for _ in range(keys)])
            labels.append(f"uid-{g}")
            lengths.append(float(rng.randint(1, 40)))
            kl.append(float("nan") if rng.random() < 0.05 else rng.uniform(-0.02, 0.0))
    return rows, labels, lengths, kl


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"batch_norm": "token", "use_kl_in_reward": True, "kl_weight": 0.5},
        {"batch_norm": "none", "std_norm": {"b": False}, "conditions": {"b": {"on": "a", "threshold": 1.0}}},
        {"nan_policy": "zero", "eps_group": 1e-3, "conditions": {"c": {"on": "a", "threshold": 0.5}}},
    ],
)
def test_reference_agrees_with_the_estimator(options: dict) -> None:
    torch = pytest.importorskip("torch")
    from gdpo_verl.config import GDPOConfig
    from gdpo_verl.estimator import compute_gdpo

    reference = _load("reference_gdpo")
    rng = random.Random(str(options))
    alg = {
        "gdpo_reward_keys": ["a", "b", "c"],
        "gdpo_reward_weights": [1.0, 0.5, 2.0],
        "use_kl_in_reward": options.get("use_kl_in_reward", False),
        "gdpo": {k: v for k, v in options.items() if k not in ("use_kl_in_reward",)},
    }
    cfg = GDPOConfig.from_algorithm(alg)
    for trial in range(5):
        rows, labels, lengths, kl = _batch(rng, groups=6, size=1 + trial, keys=3, missing=0.1)
        comps = torch.tensor([[math.nan if v is None else v for v in r] for r in rows], dtype=torch.float64)
        kl_t = torch.tensor(kl, dtype=torch.float64) if cfg.use_kl_in_reward else None
        ours, _ = compute_gdpo(comps, labels, torch.tensor(lengths, dtype=torch.float64), cfg, kl_t)
        tap_header = json.loads(json.dumps(_header(cfg)))  # what the tap writes, through JSON
        theirs = reference.advantages(rows, labels, lengths, tap_header, kl if cfg.use_kl_in_reward else None)
        assert max(abs(a - b) for a, b in zip(ours.tolist(), theirs, strict=True)) < 1e-9


def _header(cfg) -> dict:
    import dataclasses

    raw = dataclasses.asdict(cfg)
    raw["conditions"] = [dataclasses.asdict(c) for c in cfg.conditions]
    return raw


def test_exact_check_from_a_v1_style_dump(tmp_path: Path) -> None:
    """V1 dumps scores only: components come from the tap; a wrong trained advantage is still caught."""
    pytest.importorskip("torch")
    from gdpo_verl.config import GDPOConfig

    reference = _load("reference_gdpo")
    rc = _load("recompute_advantages")
    cfg = GDPOConfig.from_algorithm({"gdpo_reward_keys": ["a", "b"], "gdpo_reward_weights": [1.0, 1.0]})
    rows, labels, lengths, _ = _batch(random.Random(3), groups=4, size=4, keys=2, missing=0.0)
    header = _header(cfg)
    adv = reference.advantages(rows, labels, lengths, header)
    tap = [{"gdpo": header}] + [
        {"group": g, "length": n, "kl": None, "components": r, "advantage": a, "spread": 0.0}
        for r, g, n, a in zip(rows, labels, lengths, adv, strict=True)
    ]
    dump = [
        {"input": "p", "output": "o", "score": sum(r), "uid": f"{g}_0_{i}"}
        for i, (r, g) in enumerate(zip(rows, labels, strict=True))
    ]
    (tmp_path / "tap").mkdir()
    (tmp_path / "dump").mkdir()
    (tmp_path / "tap" / "1.jsonl").write_text("\n".join(json.dumps(x) for x in tap) + "\n")
    (tmp_path / "dump" / "1.jsonl").write_text("\n".join(json.dumps(x) for x in dump[:-2]) + "\n")  # fewer: padding
    assert rc.main(["--dump", str(tmp_path / "dump"), "--tap", str(tmp_path / "tap")]) == 0
    tap[3]["advantage"] += 1e-3
    (tmp_path / "tap" / "1.jsonl").write_text("\n".join(json.dumps(x) for x in tap) + "\n")
    assert rc.main(["--dump", str(tmp_path / "dump"), "--tap", str(tmp_path / "tap")]) == 1


def test_every_threshold_states_its_source() -> None:
    import yaml

    checks = yaml.safe_load((ROOT / "ci" / "thresholds.yaml").read_text())["checks"]
    assert checks and all(str(c.get("source", "")).strip() for c in checks)
    for c in checks:
        tuned = any(k in c for k in ("improve", "compare", "max"))
        assert not tuned or "estimate" in c["source"] or "paper" in c["source"], c
