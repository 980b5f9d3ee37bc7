"""Soak the reward pool: many steps of math and code rows through ``MultiRewardScorer`` (as ``gdpo_multi`` runs
it), each step with one injected fault, and check that no row is lost or wrong and nothing leaks.

Faults (one per step, in turn): a caller cancelling rows (``asyncio.wait_for``), a worker SIGKILLed, a worker
SIGSTOPped for a second, a worker stopped for good (its row times out), an idle sandbox server killed, bad ground
truths, workers that cannot be started (out of descriptors) while one is killed, none.

Every row must end as the reference value (scored once, inline, before the soak) or as NaN with a counted cause;
memory, descriptors and throughput are sampled per step; after close() no worker, sandbox server or sandbox cgroup
of this process or its workers may be left. Prints one JSON line per ``--every`` steps and a summary.

    flock /tmp/gdpo-heavy.lock timeout 900 python scripts/soak_rewards.py --steps 40
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import random
import resource
import signal
import statistics
import time

from gdpo_verl.rewards._worker import evaluate
from gdpo_verl.rewards.leftovers import sandbox_cgroups, sandbox_servers
from gdpo_verl.rewards.manager import MultiRewardScorer, parse_config

FAULTS = ("cancel", "kill", "pause", "stop", "kill_server", "bad_gt", "no_fds", "none")
CODE_TIMEOUT_S = 15.0  # per code call in the soak (the suite's 120 s would make a stopped worker hold a step long)


def math_rows(n: int, rng: random.Random) -> list[dict]:
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        gt = rng.choice([str(a + b), f"\\frac{{{a}}}{{{b}}}"])
        ans = gt if rng.random() < 0.5 else str(a * b + i)
        text = f"<think>{'Check. ' * rng.randint(1, 20)}</think>\nSo $\\boxed{{{ans}}}$."
        rows.append({"solution_str": text, "ground_truth": gt, "num_tokens": len(text) // 4})
    return rows


CODE_BODIES = (
    "a, b = map(int, input().split())\nprint(a + b)",
    "a, b = map(int, input().split())\nprint(a - b)",
    "a, b = map(int, input().split())\nprint(a // (b - b))",
    "import sys\nprint(sum(map(int, sys.stdin.read().split())))",
)


def code_rows(n: int, rng: random.Random) -> list[dict]:
    rows = []
    for _ in range(n):
        pairs = [(rng.randint(-50, 50), rng.randint(-50, 50)) for _ in range(3)]
        gt = json.dumps({"inputs": [f"{a} {b}\n" for a, b in pairs], "outputs": [f"{a + b}\n" for a, b in pairs]})
        text = f"```python\n{rng.choice(CODE_BODIES)}\n```"
        rows.append({"solution_str": text, "ground_truth": gt, "num_tokens": len(text) // 4})
    return rows


def reference(scorer: MultiRewardScorer, rows: list[dict]) -> list[list[float]]:
    """Each row's values, computed inline in this process (no pool)."""
    out = []
    for r in rows:
        payload = {"data_source": "soak", "extra_info": {}, **r}
        out.append([evaluate(fn, payload, kw) for fn, kw in scorer._calls])
    return out


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def server_rss_mib(top: int) -> float:
    """A sandbox server's memory: its top process and its direct children (with namespaces, the launcher)."""
    try:
        with open(f"/proc/{top}/task/{top}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        children = []
    return rss_mib(top) + sum(rss_mib(c) for c in children)


def worker_pids(scorer: MultiRewardScorer) -> list[int]:
    return [w.proc.pid for w in scorer.pool._workers if w.proc.poll() is None]


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.math = MultiRewardScorer(parse_config({"suite": "math", "timeout_s": 10}))
        code_cfg = {
            "suite": "code",
            "rewards": [
                {"name": "pass_rate", "timeout_s": CODE_TIMEOUT_S},
                {"name": "bug_free", "timeout_s": CODE_TIMEOUT_S},
            ],
        }
        self.code = MultiRewardScorer(parse_config(code_cfg))
        self.math_pool = math_rows(args.math_pool, self.rng)
        self.code_pool = code_rows(args.code_pool, self.rng)
        self.math_ref = reference(self.math, self.math_pool)
        self.code_ref = reference(self.code, self.code_pool)
        self.seen_pids: set[int] = {os.getpid()}
        self.counts: collections.Counter[str] = collections.Counter()
        self.causes: collections.Counter[str] = collections.Counter()
        self.samples: list[dict] = []
        self.wrong: list[dict] = []  # the first rows whose value differs from the reference

    async def score(self, scorer: MultiRewardScorer, row: dict, cancel_after: float | None) -> dict | None:
        payload = {"data_source": "soak", "extra_info": {}, **row}
        if cancel_after is None:
            return await scorer.score(payload)
        try:
            return await asyncio.wait_for(scorer.score(payload), cancel_after)
        except TimeoutError:
            return None

    def inject(self, fault: str) -> tuple[str, object]:
        """Start a fault; returns what to undo after the step."""
        scorer = self.math if fault == "no_fds" else self.rng.choice([self.math, self.code])  # math: always busy
        pids = worker_pids(scorer)
        if fault in ("kill", "pause", "stop") and pids:
            pid = self.rng.choice(pids)
            os.kill(pid, {"kill": signal.SIGKILL, "pause": signal.SIGSTOP, "stop": signal.SIGSTOP}[fault])
            return fault, pid
        if fault == "kill_server":
            servers = sandbox_servers(set(worker_pids(self.code)))
            if servers:
                try:
                    os.kill(self.rng.choice(servers), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return fault, None
        if fault == "no_fds":
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            fd = os.dup(0)
            os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd, hard))
            if pids:
                os.kill(self.rng.choice(pids), signal.SIGKILL)  # its replacement cannot start for a while
            return fault, (soft, hard)
        return fault, None

    async def step(self, i: int) -> None:
        fault = FAULTS[i % len(FAULTS)]
        m_idx = [self.rng.randrange(len(self.math_pool)) for _ in range(self.args.math)]
        c_idx = [self.rng.randrange(len(self.code_pool)) for _ in range(self.args.code)]
        m_rows = [dict(self.math_pool[j]) for j in m_idx]
        c_rows = [dict(self.code_pool[j]) for j in c_idx]
        bad = set()
        if fault == "bad_gt":
            bad = set(self.rng.sample(range(len(m_rows)), min(5, len(m_rows))))
            for j in bad:
                m_rows[j]["ground_truth"] = self.rng.choice([None, "", "\\boxed{"])
        cancel = set(self.rng.sample(range(len(m_rows)), min(10, len(m_rows)))) if fault == "cancel" else set()
        start = time.monotonic()
        tasks = [self.score(self.math, r, 0.001 if j in cancel else None) for j, r in enumerate(m_rows)]
        tasks += [self.score(self.code, r, None) for r in c_rows]
        gathered = asyncio.gather(*tasks)
        await asyncio.sleep(0.01)  # faults hit a running step: rows are in the workers' pipes and running
        kind, undo = self.inject(fault)
        if kind == "pause":
            await asyncio.sleep(1.0)
            os.kill(undo, signal.SIGCONT)
        if kind == "no_fds":
            await asyncio.sleep(1.0)
            resource.setrlimit(resource.RLIMIT_NOFILE, undo)
        results = await gathered
        wall = time.monotonic() - start
        if kind == "stop":
            try:
                os.kill(undo, signal.SIGCONT)  # killed by then; harmless if not
            except ProcessLookupError:
                pass
        for j, out in enumerate(results):
            is_math = j < len(m_rows)
            ref = self.math_ref[m_idx[j]] if is_math else self.code_ref[c_idx[j - len(m_rows)]]
            scorer = self.math if is_math else self.code
            if out is None:
                self.counts["cancelled_rows"] += 1
                continue
            self.counts["rows"] += 1
            for spec, want in zip(scorer.cfg.rewards, ref, strict=True):
                got = out[spec.name]
                if math.isnan(got):
                    continue  # counted by cause in scorer.failures
                bad_gt_scored = is_math and j in bad and spec.name == "correct"  # a bad ground truth must be NaN
                if bad_gt_scored or (got != want and spec.condition is None):  # the reference is unconditioned
                    self.counts["wrong_values"] += 1
                    if len(self.wrong) < 10:
                        row = m_rows[j] if is_math else c_rows[j - len(m_rows)]
                        self.wrong.append(
                            {
                                "step": i,
                                "fault": fault,
                                "reward": spec.name,
                                "want": want,
                                "got": got,
                                "row": {k: str(v)[:120] for k, v in row.items()},
                            }
                        )
        self.counts[f"fault_{kind}"] += 1
        for sc in (self.math, self.code):
            self.seen_pids.update(w.proc.pid for w in sc.pool._workers)
        pids = worker_pids(self.math) + worker_pids(self.code)
        self.samples.append(
            {
                "step": i,
                "fault": kind,
                "rows_per_s": round((len(m_rows) + len(c_rows)) / wall, 1),
                "math_worker_rss_mib": [round(rss_mib(p), 1) for p in worker_pids(self.math)],
                "code_worker_rss_mib": [round(rss_mib(p), 1) for p in worker_pids(self.code)],
                "server_rss_mib": [round(server_rss_mib(p), 1) for p in sandbox_servers(set(pids))],
                "fds": len(os.listdir("/proc/self/fd")),
                "restarts": self.math.pool.restarts + self.code.pool.restarts,
            }
        )
        if i % self.args.every == 0:
            print(json.dumps(self.samples[-1]), flush=True)

    def close(self) -> dict:
        pids = self.seen_pids | {p for sc in (self.math, self.code) for p in worker_pids(sc)}
        self.math.close()
        self.code.close()
        deadline = time.monotonic() + 10
        while sandbox_servers(pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        return {"servers_left": len(sandbox_servers(pids)), "cgroups_left": len(sandbox_cgroups(pids))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--math", type=int, default=200, help="math rows per step")
    p.add_argument("--code", type=int, default=30, help="code rows per step")
    p.add_argument("--math-pool", type=int, default=300, help="distinct math samples")
    p.add_argument("--code-pool", type=int, default=60, help="distinct code samples")
    p.add_argument("--every", type=int, default=5, help="print a sample every N steps")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    load_before = os.getloadavg()
    fds_before = len(os.listdir("/proc/self/fd"))
    start = time.monotonic()
    soak = Soak(args)
    for i in range(args.steps):
        asyncio.run(soak.step(i))
    left = soak.close()
    s = soak.samples
    quarter = max(1, len(s) // 4)
    summary = {
        "steps": args.steps,
        "rows": soak.counts["rows"],
        "cancelled_rows": soak.counts["cancelled_rows"],
        "wrong_values": soak.counts["wrong_values"],
        "wrong_examples": soak.wrong,
        "nan_by_cause": {f"{k[0]}:{k[1]}": v for sc in (soak.math, soak.code) for k, v in sc.failures.items()},
        "faults": {k[6:]: v for k, v in soak.counts.items() if k.startswith("fault_")},
        "restarts": {"math": soak.math.pool.restarts, "code": soak.code.pool.restarts},
        "spawn_failures": soak.math.pool.spawn_failures + soak.code.pool.spawn_failures,
        "dispatcher_errors": soak.math.pool.internal_errors + soak.code.pool.internal_errors,
        "rows_per_s_first_quarter": round(statistics.median(x["rows_per_s"] for x in s[:quarter]), 1),
        "rows_per_s_last_quarter": round(statistics.median(x["rows_per_s"] for x in s[-quarter:]), 1),
        "math_worker_rss_mib_max_first_last": [
            max(s[0]["math_worker_rss_mib"], default=0),
            max(s[-1]["math_worker_rss_mib"], default=0),
        ],
        "code_worker_rss_mib_max_first_last": [
            max(s[0]["code_worker_rss_mib"], default=0),
            max(s[-1]["code_worker_rss_mib"], default=0),
        ],
        "server_rss_mib_max_first_last": [
            max(s[0]["server_rss_mib"], default=0),
            max(s[-1]["server_rss_mib"], default=0),
        ],
        "fds_min_max_during": [min(x["fds"] for x in s), max(x["fds"] for x in s)],
        "fds_before_after": [fds_before, len(os.listdir("/proc/self/fd"))],
        **left,
        "wall_s": round(time.monotonic() - start, 1),
        "cpus": len(os.sched_getaffinity(0)),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
