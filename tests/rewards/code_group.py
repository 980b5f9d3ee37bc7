"""Score a GRPO-like group of code responses through the multi-reward manager, as ``gdpo_multi`` does: one prompt,
every rollout a distinct program (so no result cache is shared), submitted together to the scorer's process pool.
The expected output carries a random token no program can compute: only reading it from somewhere scores."""

from __future__ import annotations

import math
import uuid

from gdpo_verl.rewards.manager import MultiRewardScorer, parse_config

TOKEN = f"SECRET{uuid.uuid4().hex[:12]}"
GT = {"inputs": ["1 2\n", "5 5\n"], "outputs": [f"{TOKEN}3\n", f"{TOKEN}10\n"]}
HONEST = f"a, b = map(int, input().split())\nprint('{TOKEN}' + str(a + b))"
# what every attack prints once it found the token somewhere (and a wrong answer otherwise)
FOUND = """
a, b = map(int, input().split())
print((FOUND or 'NOTHING') + str(a + b))
"""
SCAN = r"""
import re
PAT = re.compile(rb'SECRET[0-9a-f]{12}')
FOUND = None
def look(data):
    global FOUND
    if FOUND is None and data:
        m = PAT.search(data if isinstance(data, (bytes, bytearray)) else str(data).encode('utf-8', 'replace'))
        if m:
            FOUND = m.group(0).decode()
"""
# a directory tree as deep as the file system allows (dir_fd: the audit hook sees only a relative name); i = depth
DEEP_TREE = """
import os
fd = os.open('.', os.O_RDONLY)
for i in range(100000):
    try:
        os.mkdir('d', dir_fd=fd)
        nfd = os.open('d', os.O_RDONLY, dir_fd=fd)
    except OSError:
        break
    os.close(fd)
    fd = nfd
"""


def respond(body: str, i: int) -> str:
    return f"<think>rollout {i}</think>\n```python\n# rollout {i}\n{body}\n```"


def scorer(max_workers: int = 2, timeout_s: float = 120.0, **kwargs) -> MultiRewardScorer:
    rewards = [{"name": n, "kwargs": kwargs, "timeout_s": timeout_s} for n in ("pass_rate", "bug_free")]
    return MultiRewardScorer(parse_config({"suite": "code", "max_workers": max_workers, "rewards": rewards}))


def score_group(bodies: list[str], gt=GT, wait_s: float = 240.0, s: MultiRewardScorer | None = None, **kw) -> list:
    """[(pass_rate, bug_free, failures)] per body, in order; all submitted at once."""
    own = s is None
    s = s or scorer(**kw)
    try:
        futures = [
            s.submit(
                {
                    "data_source": "code",
                    "solution_str": respond(b, i),
                    "ground_truth": gt,
                    "extra_info": {},
                    "num_tokens": 10,
                }
            )  # fmt: skip
            for i, b in enumerate(bodies)
        ]
        outs = [s.finish(f.result(timeout=wait_s)) for f in futures]
    finally:
        if own:
            s.close()
    return [(o["pass_rate"], o["bug_free"], o["gdpo_reward_failures"]) for o in outs]


def check_group(bodies: list[str], honest: set[int], results: list) -> None:
    """Honest rollouts score pass_rate 1 and bug_free 1, every other one pass_rate 0; no NaN anywhere."""
    for i, (body, (p, b, failed)) in enumerate(zip(bodies, results, strict=True)):
        assert not math.isnan(p) and not math.isnan(b) and failed == 0, (i, body[:200], results)
        assert (p, b) == (1.0, 1.0) if i in honest else p == 0.0, (i, body[:200], (p, b))
