"""Time verl's built-in gdpo, verl's grpo_vectorized and gdpo_verl's GDPO side by side in one process.

    python scripts/bench_advantage.py [--shapes 1024x3x256,8192x3x1024,32768x3x2048] [--repeats 7] [--group 8]
                                      [--aggregation gdpo|saturation|cv|group_variance|conflict]

Shapes are BxKxT (responses x rewards x tokens). Each estimator is called the way verl calls it (legacy trainer:
token_level_rewards, response_mask, uid index, config, non_tensor_batch, batch) and timed as the median of repeats;
the repeats of the three are interleaved, so load on a shared machine affects every ratio alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from omegaconf import OmegaConf


def make_inputs(b: int, k: int, t: int, group: int, seed: int = 0, aggregation: str = "gdpo") -> dict:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (b,), generator=gen)
    mask = (torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)).float()
    keys = [f"r{i}" for i in range(k)]
    comps = {key: (torch.rand(b, generator=gen) > 0.5).float().numpy() for key in keys}
    rewards = torch.zeros(b, t)
    rewards[torch.arange(b), lengths - 1] = torch.from_numpy(sum(comps.values()))
    uid = np.array([f"uid-{i // group}" for i in range(b)], dtype=object)
    batch = {
        "prompts": torch.zeros(b, 4, dtype=torch.long),
        "attention_mask": torch.cat([torch.ones(b, 4), mask], 1).long(),
    }
    cfg = OmegaConf.create({"adv_estimator": "gdpo", "gdpo_reward_keys": keys, "gdpo": {"aggregation": aggregation}})
    return {"rewards": rewards, "mask": mask, "uid": uid, "comps": comps, "batch": batch, "cfg": cfg}


def median_seconds(fns: dict[str, Callable[[], object]], repeats: dict[str, int]) -> dict[str, float]:
    """Median wall time of each function, with the repeats interleaved (one call of each per round), so a burst of
    load on a shared machine hits every estimator alike instead of skewing one ratio."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(max(repeats.values())):
        for name, fn in fns.items():
            if i < repeats[name]:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="1024x3x256,8192x3x1024,32768x3x2048")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--builtin-repeats", type=int, default=3, help="verl's built-in is slow: fewer repeats")
    parser.add_argument("--group", type=int, default=8, help="rollouts per prompt")
    parser.add_argument("--aggregation", default="gdpo", help="algorithm.gdpo.aggregation of gdpo_verl's GDPO")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import verl  # noqa: F401  (loads the plugin)
    from gdpo_verl_plugins import adv_estimator
    from verl.trainer.ppo import core_algos

    builtin = adv_estimator._builtin["gdpo"]
    ours = adv_estimator.compute_gdpo_outcome_advantage
    grpo_vec = core_algos.compute_grpo_vectorized_outcome_advantage
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, group size {args.group}")
    cols = ("shape BxKxT", "builtin gdpo", "grpo_vectorized", "gdpo_verl", "builtin/ours", "ours/grpo_vec")
    header = "".join(f"{c:>17}" for c in cols)
    print(header)
    print("-" * len(header))
    for shape in args.shapes.split(","):
        b, k, t = (int(x) for x in shape.split("x"))
        x = make_inputs(b, k, t, args.group, aggregation=args.aggregation)
        legacy = (x["rewards"], x["mask"], x["uid"])
        full = {"config": x["cfg"], "non_tensor_batch": x["comps"], "batch": x["batch"]}
        fns = {
            "builtin": partial(builtin, *legacy, **full),
            "grpo": partial(grpo_vec, *legacy, config=x["cfg"]),
            "ours": partial(ours, *legacy, **full),
        }
        reps = {"builtin": args.builtin_repeats, "grpo": args.repeats, "ours": args.repeats}
        with torch.no_grad():
            med = median_seconds(fns, reps)
        t_builtin, t_grpo, t_ours = med["builtin"], med["grpo"], med["ours"]
        cells = (f"{t_builtin * 1e3:.1f}ms", f"{t_grpo * 1e3:.1f}ms", f"{t_ours * 1e3:.1f}ms")
        ratios = (f"{t_builtin / t_ours:.1f}x", f"{t_ours / t_grpo:.2f}x")
        print("".join(f"{c:>17}" for c in (shape, *cells, *ratios)))
    print("targets: builtin/ours >= 30x, ours/grpo_vec <= 1.1x (at 8192x3x1024)")


if __name__ == "__main__":
    main()
