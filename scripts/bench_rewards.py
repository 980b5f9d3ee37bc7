"""Score math and code responses with gdpo_multi vs verl's ``naive`` manager (same reward functions, one process),
and, for code, vs verl's own code scorer (``prime_code``, what ``naive`` runs for ``data_source=codecontests``).

All managers are driven like verl's RewardLoopWorker drives them: one ``run_single`` task per sample, all gathered
on one event loop. ``naive`` gets a ``compute_score`` that calls the same built-in functions one after the other (in
verl's default thread pool); ``gdpo_multi`` runs them in its process pool; ``prime_code`` is ``naive`` with verl's
``default_compute_score`` on the same responses and tests.

Each measurement alternates the managers ``--repeat`` times and reports the medians (shared machines are noisy),
with the load average before and after. ``gdpo_multi_vs_naive`` and ``gdpo_multi_vs_prime_code`` are time ratios
(> 1: gdpo_multi is faster).

    python scripts/bench_rewards.py --math 2000 --code 300 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time

import numpy as np
import torch
from omegaconf import OmegaConf

MATH_FNS = {"correct": "math.correct", "length": "math.length"}
CODE_FNS = {"pass_rate": "code.pass_rate", "bug_free": "code.bug_free", "length": "code.length"}


class CharTokenizer:
    def decode(self, ids, skip_special_tokens=True) -> str:
        return "".join(map(chr, ids.tolist()))


def math_samples(n: int, rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        gt = rng.choice([str(a + b), f"\\frac{{{a}}}{{{b}}}", f"{a}\\sqrt{{{b}}}"])
        ans = gt if rng.random() < 0.5 else str(a * b + i)
        text = (
            f"<think>\nWe need to combine {a} and {b}. "
            + "Checking the arithmetic again. " * rng.randint(1, 30)
            + f"\n</think>\nTherefore the answer is $\\boxed{{{ans}}}$."
        )
        out.append((text, gt))
    return out


CODE_BODIES = [
    "a, b = map(int, input().split())\nprint(a + b)",
    "a, b = map(int, input().split())\nprint(a - b)",
    "a, b = map(int, input().split())\nprint(a // (b - b))",
    "a, b = map(int, input().split()\nprint(a + b)",
    "import sys\nnums = list(map(int, sys.stdin.read().split()))\nprint(sum(nums))",
]


def code_samples(n: int, rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        pairs = [(rng.randint(-50, 50), rng.randint(-50, 50)) for _ in range(3)]
        gt = json.dumps({"inputs": [f"{a} {b}\n" for a, b in pairs], "outputs": [f"{a + b}\n" for a, b in pairs]})
        body = rng.choice(CODE_BODIES)
        out.append((f"<think>Read the numbers.</think>\n```python\n{body}\n```", gt))
    return out


def to_data(text: str, gt: str, source: str):
    from verl import DataProto

    ids = torch.tensor([[ord(c) for c in text]])
    return DataProto.from_dict(
        tensors={
            "prompts": torch.zeros(1, 2, dtype=torch.long),
            "responses": ids,
            "attention_mask": torch.ones(1, 2 + ids.shape[1], dtype=torch.long),
        },
        non_tensors={
            "data_source": np.array([source], dtype=object),
            "reward_model": np.array([{"ground_truth": gt}], dtype=object),
            "extra_info": np.array([{}], dtype=object),
        },
    )


def naive_compute_score(fns: dict[str, str]):
    from gdpo_verl.rewards._worker import evaluate

    def compute_score(data_source, solution_str, ground_truth, extra_info=None, **_):
        payload = {
            "data_source": data_source,
            "solution_str": solution_str,
            "ground_truth": ground_truth,
            "extra_info": extra_info,
            "num_tokens": len(solution_str),
        }
        out = {k: evaluate(fn, payload, {}) for k, fn in fns.items()}
        return {"score": sum(out.values()), **out}

    return compute_score


async def drive(manager, data) -> list[dict]:
    return await asyncio.gather(*[manager.run_single(d) for d in data])


def timed(manager, data) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    out = manager.loop.run_until_complete(drive(manager, data))  # verl managers keep the loop they were made on
    return time.perf_counter() - start, out


def bench(name: str, fns: dict[str, str], samples, source: str, workers: int | None, repeat: int) -> dict:
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    data = [to_data(t, g, source) for t, g in samples]
    verl_data = [to_data(t, g, "codecontests") for t, g in samples] if name == "code" else None
    section = {"rewards": [{"name": k, "fn": v} for k, v in fns.items()], "timeout_s": 60}
    if workers is not None:
        section["max_workers"] = workers
    cfg = OmegaConf.create(
        {
            "reward": {
                "num_workers": 1,
                "custom_reward_function": {"path": None},
                "gdpo_multi": section,
            },
            "algorithm": {},
            "trainer": {"experiment_name": "bench"},
        }
    )
    naive = get_reward_manager_cls("naive")(cfg, CharTokenizer(), naive_compute_score(fns))
    ours = get_reward_manager_cls("gdpo_multi")(cfg, CharTokenizer(), None)
    prime = get_reward_manager_cls("naive")(cfg, CharTokenizer(), None) if verl_data else None
    t_naive, t_ours, t_prime = [], [], []
    try:
        timed(ours, data[: 4 * ours.scorer.pool.max_workers])  # start the workers and import the suites once
        timed(naive, data[:2])
        if prime:
            timed(prime, verl_data[:2])
        for _ in range(repeat):
            dt, out_naive = timed(naive, data)
            t_naive.append(dt)
            dt, out_ours = timed(ours, data)
            t_ours.append(dt)
            if prime:
                dt, out_prime = timed(prime, verl_data)
                t_prime.append(dt)
        pool_workers = ours.scorer.pool.max_workers
    finally:
        ours.scorer.close()
    agree = all(
        a["reward_extra_info"][k] == b["reward_extra_info"][k]
        for a, b in zip(out_naive, out_ours, strict=True)
        for k in fns
    )
    ours_s = statistics.median(t_ours)
    row = {
        "suite": name,
        "n": len(data),
        "naive_s": round(statistics.median(t_naive), 2),
        "gdpo_multi_s": round(ours_s, 2),
        "gdpo_multi_vs_naive": round(statistics.median(t_naive) / ours_s, 2),
        "naive_per_s": round(len(data) / statistics.median(t_naive), 1),
        "gdpo_multi_per_s": round(len(data) / ours_s, 1),
        "runs_naive_s": [round(t, 2) for t in t_naive],
        "runs_gdpo_multi_s": [round(t, 2) for t in t_ours],
        "pool_workers": pool_workers,
        "same_values": agree,
    }
    if t_prime:
        row["prime_code_s"] = round(statistics.median(t_prime), 2)
        row["gdpo_multi_vs_prime_code"] = round(statistics.median(t_prime) / ours_s, 2)
        row["runs_prime_code_s"] = [round(t, 2) for t in t_prime]
        # prime_code's score is its pass rate: how often the two scorers agree on the same responses and tests
        row["same_pass_rate_as_prime_code"] = round(
            statistics.mean(
                float(a["reward_score"] == b["reward_extra_info"]["pass_rate"])
                for a, b in zip(out_prime, out_ours, strict=True)
            ),
            3,
        )
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--math", type=int, default=2000)
    p.add_argument("--code", type=int, default=300)
    p.add_argument("--workers", type=int, default=None, help="reward.gdpo_multi.max_workers (default: the manager's)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--code-before-per-s",
        type=float,
        default=None,
        help="responses/s that gdpo_multi reached on the code suite before a change; prints the ratio",
    )
    args = p.parse_args()
    rng = random.Random(args.seed)
    import verl  # noqa: F401 - loads the gdpo_verl plugin, which registers gdpo_multi

    load_before = os.getloadavg()
    rows = []
    if args.math:
        rows.append(bench("math", MATH_FNS, math_samples(args.math, rng), "math", args.workers, args.repeat))
    if args.code:
        rows.append(bench("code", CODE_FNS, code_samples(args.code, rng), "code", args.workers, args.repeat))
    for r in rows:
        if r["suite"] == "code" and args.code_before_per_s:
            r["gdpo_multi_vs_before"] = round(r["gdpo_multi_per_s"] / args.code_before_per_s, 2)
        print(json.dumps(r))
    total_naive, total_ours = sum(r["naive_s"] for r in rows), sum(r["gdpo_multi_s"] for r in rows)
    print(
        json.dumps(
            {
                "total_naive_s": round(total_naive, 2),
                "total_gdpo_multi_s": round(total_ours, 2),
                "gdpo_multi_vs_naive": round(total_naive / total_ours, 2),
                "cpus": len(os.sched_getaffinity(0)),
                "load_before": [round(x, 2) for x in load_before],
                "load_after": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
