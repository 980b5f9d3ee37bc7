"""ci/check_results.py on synthetic verl file-logger JSONL."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ci_check_results", ROOT / "ci" / "check_results.py")
assert _spec is not None and _spec.loader is not None
cr = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = cr  # dataclasses look the module up
_spec.loader.exec_module(cr)

KEYS = ("correct", "integer", "format")


def write_run(
    path: Path,
    gdpo: bool,
    end: float,
    steps: int = 30,
    val_end: float | None = None,
    nan_at: int | None = None,
    evicted: int = 3,
    distinct_gap: float = 0.5,
) -> str:
    """A run whose rewards rise linearly from 0.1 to `end`; validation at step 0 and every 10 steps (verl's layout)."""
    with open(path, "w") as f:
        f.write(json.dumps({"step": 0, "data": {f"val-aux/openai/gsm8k/{k}/mean@1": 0.1 for k in KEYS}}) + "\n")
        for step in range(1, steps + 1):
            frac = (step - 1) / (steps - 1)
            value = 0.1 + (end - 0.1) * frac
            data: dict[str, object] = {"critic/score/mean": 3 * value, "timing_s/step": 12.5}
            data |= {"actor/pg_loss": -0.01, "actor/grad_norm": 0.3, "critic/advantages/mean": 0.0}
            if nan_at == step:
                data["actor/pg_loss"] = float("nan")
            if evicted:
                data["training/filter_groups/evicted_samples"] = evicted
            if gdpo:
                data["gdpo/impl"] = 1.0
                data |= {"gdpo/collapse/distinct_gdpo": 3.0, "gdpo/collapse/distinct_grpo": 3.0 - distinct_gap}
                for k in KEYS:
                    data[f"gdpo/{k}/mean"] = value
                    data[f"gdpo/{k}/missing_frac"] = 0.0
            if step % 10 == 0:
                v = val_end if val_end is not None and step == steps else value
                data |= {f"val-aux/openai/gsm8k/{k}/mean@1": v for k in KEYS}
            f.write(json.dumps({"step": step, "data": data}) + "\n")
    return str(path)


def run(tmp_path: Path, gdpo_end: float = 0.8, grpo_end: float = 0.75, seeds: int = 3, **kw: object) -> int:
    """GDPO and GRPO runs for each seed, as ci/gpu_regression.sh names them; `kw` changes the first GDPO seed."""
    args = []
    for seed in range(1, seeds + 1):
        extra = {k: v for k, v in kw.items() if not k.endswith("_val")} if seed == 1 else {}
        g = write_run(tmp_path / f"gdpo-s{seed}.jsonl", True, gdpo_end, val_end=kw.get("gdpo_val"), **extra)
        r = write_run(tmp_path / f"grpo-s{seed}.jsonl", False, grpo_end, val_end=kw.get("grpo_val"))
        args += ["--run", f"gdpo-s{seed}={g}", "--run", f"grpo-s{seed}={r}"]
    return cr.main([*args, "--thresholds", str(ROOT / "ci" / "thresholds.yaml")])


def test_healthy_runs_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = run(tmp_path)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "OK: 0 of" in out and "val correct gdpo vs grpo" in out
    assert all(f"gdpo-s{s}" in out and f"grpo-s{s}" in out for s in (1, 2, 3))  # each seed checked


def test_gdpo_worse_than_grpo_fails_with_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = run(tmp_path, gdpo_val=0.4, grpo_val=0.7)
    out = capsys.readouterr().out
    assert rc == 1
    failing = [line for line in out.splitlines() if line.rstrip().endswith("FAIL")]
    assert len(failing) == 3 and all("gdpo vs grpo" in line and "-0.3000" in line for line in failing), out
    assert out.splitlines()[0].split() == ["check", "run", "value", "threshold", "status"]


def test_no_learning_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = run(tmp_path, gdpo_end=0.1, grpo_end=0.1)
    out = capsys.readouterr().out
    assert rc == 1 and "last-first >= 0.1" in out


@pytest.mark.parametrize(
    ("broken", "label"),
    [
        ({"nan_at": 7}, "no NaN: actor/pg_loss"),
        ({"evicted": 0}, "filter evicted groups"),
        ({"distinct_gap": -0.2}, "distinct advantages GDPO >= GRPO"),
    ],
)
def test_invariants_fail_on_one_seed(
    broken: dict[str, object], label: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, **broken) == 1
    failing = [line for line in capsys.readouterr().out.splitlines() if line.rstrip().endswith("FAIL")]
    assert len(failing) == 1 and failing[0].startswith(label) and "gdpo-s1" in failing[0], failing


def test_missing_metric_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = write_run(tmp_path / "g.jsonl", False, 0.8)  # a GDPO run without the plugin's metrics
    r = write_run(tmp_path / "r.jsonl", False, 0.8)
    args = ["--run", f"gdpo-s1={g}", "--run", f"grpo-s1={r}", "--thresholds", str(ROOT / "ci/thresholds.yaml")]
    assert cr.main(args) == 1
    assert "metric missing" in capsys.readouterr().out


def test_window_compare_and_nan(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    lines = [{"step": s, "data": {"a": float(s)}} for s in (3, 1, 2)] + [{"step": 4, "a": float("nan")}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    series = cr.load_metrics(str(path))
    assert [s for s, _ in series["a"]] == [1, 2, 3, 4]  # sorted by step; flat lines accepted
    rows = cr.evaluate({"window": 2, "checks": [{"metric": "a", "run": "x", "min": 0}]}, {"x": series})
    assert not rows[0].ok  # NaN in the window fails
    rows = cr.evaluate(
        {"window": 1, "checks": [{"metric": "a", "compare": {"run": "x", "than": "y", "margin": 0.5}}]},
        {"x": {"a": [(1, 1.0)]}, "y": {"a": [(1, 1.4)]}},
    )
    assert rows[0].ok and abs(rows[0].value + 0.4) < 1e-9


def test_bad_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert cr.main(["--run", f"gdpo={bad}", "--thresholds", str(ROOT / "ci/thresholds.yaml")]) == 2
    assert cr.main(["--run", f"gdpo={tmp_path / 'absent.jsonl'}"]) == 2


# --- exact check: the advantages of a (synthetic) training step, recomputed from verl's rollout dump --------------


def _load(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"ci_{name}", ROOT / "ci" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.verl
@pytest.mark.parametrize("setting", ["plain", "conditioned-kl-token"])
def test_exact_check_on_a_step_dumped_in_verls_format(
    setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real plugin estimator runs with the tap on a legacy-trainer batch; verl's own writer dumps the rollouts;
    the recompute matches, and a changed component, a swapped group or a wrong weight is caught."""
    pytest.importorskip("verl")
    import numpy as np
    import torch
    from omegaconf import OmegaConf

    from gdpo_verl import estimator

    monkeypatch.setenv("GDPO_CI_TAP_DIR", str(tmp_path / "tap"))
    monkeypatch.setattr(estimator, "compute_gdpo", estimator.compute_gdpo)  # restored after the test
    monkeypatch.setattr(estimator, "to_tokens", estimator.to_tokens)
    tap = _load("advantage_tap")
    tap.install()
    from gdpo_verl_plugins import adv_estimator
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    rng = np.random.default_rng(7)
    groups, g, t = 6, 4, 12
    n = groups * g
    uid = np.array([f"u{i // g}" for i in range(n)], dtype=object)
    comps = {
        "correct": rng.integers(0, 2, n).astype(float),
        "length": rng.integers(0, 2, n).astype(float),
        "format": rng.random(n).round(3),
    }
    lengths = rng.integers(3, t + 1, n)
    mask = torch.tensor([[1] * k + [0] * (t - k) for k in lengths])
    scores = torch.zeros(n, t, dtype=torch.float32)
    scores[torch.arange(n), torch.as_tensor(lengths) - 1] = torch.tensor(comps["correct"], dtype=torch.float32)
    alg: dict[str, object] = {"gdpo_reward_keys": ["correct", "length", "format"], "gdpo_reward_weights": [1.0, 0.5, 2]}
    token_rewards = scores
    batch = None
    if setting != "plain":
        alg |= {"use_kl_in_reward": True, "gdpo": {"batch_norm": "token", "conditions": {"length": {"on": "correct"}}}}
        token_rewards = scores - 0.01 * torch.rand(n, t) * mask
        batch = {"token_level_scores": scores}
    cfg = OmegaConf.create(alg)
    adv, _ = adv_estimator.compute_gdpo_outcome_advantage(
        token_rewards, mask, uid, config=cfg, non_tensor_batch={**comps, "uid": uid}, batch=batch
    )
    assert (tmp_path / "tap" / "1.jsonl").is_file()

    def dump(components: dict[str, np.ndarray]) -> Path:
        out = tmp_path / f"dump{len(list(tmp_path.glob('dump*')))}"
        extra = {k: v.tolist() for k, v in components.items()}
        inputs = [f"prompt {u}" for u in uid]
        outputs = [f"response {i}" for i in range(n)]
        RayPPOTrainer._write_generations(inputs, outputs, [None] * n, scores.sum(-1).tolist(), extra, str(out), 1)
        return out

    rc = _load("recompute_advantages")
    tap_dir = str(tmp_path / "tap")
    assert rc.main(["--dump", str(dump(comps)), "--tap", tap_dir]) == 0
    changed = {**comps, "format": comps["format"].copy()}
    changed["format"][5] += 0.5
    assert rc.main(["--dump", str(dump(changed)), "--tap", tap_dir]) == 1
    swapped = {**comps, "correct": comps["length"], "length": comps["correct"]}
    if not np.array_equal(comps["correct"], comps["length"]):
        assert rc.main(["--dump", str(dump(swapped)), "--tap", tap_dir]) == 1
    # a tapped run whose weights differ from what the dump implies
    lines = (tmp_path / "tap" / "1.jsonl").read_text().splitlines()
    head = json.loads(lines[0])
    head["gdpo"]["weights"] = [1.0, 1.0, 1.0]
    bad = tmp_path / "tap_bad"
    bad.mkdir()
    (bad / "1.jsonl").write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
    assert rc.main(["--dump", str(dump(comps)), "--tap", str(bad)]) == 1
    assert rc.main(["--dump", str(tmp_path / "nowhere"), "--tap", tap_dir]) == 2
    assert float(adv.abs().max()) > 0


@pytest.mark.verl
def test_preflight_checks_every_run_with_verls_validation(tmp_path: Path) -> None:
    """The CPU half of ci/gpu_regression.sh: `gdpo-verl check --verl-validate` on the exact command of every run."""
    import os
    import subprocess

    script = (ROOT / "ci" / "gpu_regression.sh").read_text()
    checks = [line for line in script.splitlines() if "gdpo-verl check" in line and not line.startswith("#")]
    static = [line for line in checks if "--rehearse" not in line]
    assert len(static) == 2 and all("--verl-validate" in line for line in static)
    assert len(checks) == 3  # and the CPU rehearsal of the behaviour run (tests/e2e/test_rehearse.py runs one)
    (tmp_path / "data" / "gsm8k").mkdir(parents=True)
    for split in ("train", "test"):
        (tmp_path / "data" / "gsm8k" / f"{split}.parquet").touch()
    env = {**os.environ, "CI_OUT": str(tmp_path), "CI_SKIP_DOCTOR": "1", "CI_PREFLIGHT_ONLY": "1"}
    env["CI_SKIP_REHEARSAL"] = "1"
    proc = subprocess.run(
        ["bash", str(ROOT / "ci" / "gpu_regression.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("verl's validate_config") + out.count("All configuration checks passed") >= 3
    assert out.count("OK: 0 error(s)") == 3 and "--megatron --grpo" in out and "--megatron --gdpo" in out
    assert "synthetic rows" in out  # the exact check's batch is padded by V1 on purpose
