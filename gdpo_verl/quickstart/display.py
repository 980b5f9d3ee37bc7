"""What the quickstart prints while verl runs: each start-up phase as it ends (with the time since verl started), one
line per training step with the task's rewards, and a progress bar over the steps on a terminal (tqdm, on stderr).
verl's whole output goes to verl.log; ``--verbose`` prints it too."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from tqdm import tqdm

from gdpo_verl.quickstart import console, report, tasks
from gdpo_verl.quickstart.command import RunConfig


def fmt(value: float | None) -> str:
    return "  -  " if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:5.3f}"


class Progress:
    """Called with each line of verl's output; knows how far the run got (:meth:`reached`)."""

    def __init__(
        self, cfg: RunConfig, verbose: bool = False, out: TextIO | None = None, bar_file: TextIO | None = None
    ) -> None:
        self.cfg, self.verbose = cfg, verbose
        self.out = out or sys.stdout
        self.started = time.monotonic()
        self.task = tasks.get(cfg.task)
        self.keys = self.task.REWARD_KEYS
        self.phases: list[str] = []
        self.last_step: int | None = None
        # tqdm turns itself off (disable=None) where its stream is not a terminal: pipes and logs get the lines only
        self.bar = tqdm(
            total=cfg.steps,
            unit="step",
            file=bar_file or sys.stderr,
            disable=None if bar_file is None else False,
            dynamic_ncols=True,
            leave=False,
            desc="verl",
        )

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def print(self, text: str) -> None:
        """A line above the progress bar."""
        if self.bar.disable:
            print(text, file=self.out, flush=True)
        else:
            self.bar.write(text, file=self.out)
            self.out.flush()

    def __call__(self, line: str) -> None:
        if self.verbose:
            self.print(line)
        new = [p for p in console.phases(line) if p not in self.phases]
        if new:
            self.phases += new
            if not self.verbose:
                for phase in new:
                    self.print(f"  [{self.elapsed():4.0f} s] {phase}")
            return
        parsed = console.parse_step(line)
        if parsed is None:
            text = console.plain(line)
            if not self.verbose and console.is_exception_line(text):
                self.print(f"  verl: {text.strip()[:300]}")
            return
        step, metrics = parsed
        if "timing_s/step" in metrics:
            self._step(step, metrics)
        val = {k.split("/")[-2]: v for k, v in metrics.items() if k.startswith("val-aux/") and k.endswith("/mean@1")}
        if val and not self.verbose:
            self.print(
                f"  val@{step:<3d} "
                + "".join(f"   {fmt(val.get(k))}" for k in self.keys)
                + f"   {fmt(val.get('score'))}   (greedy, validation set)"
            )

    def _step(self, step: int, metrics: dict[str, float]) -> None:
        if self.last_step is None and not self.verbose:
            self.print(f"  [{self.elapsed():4.0f} s] first step done")
            self.print("   step " + "".join(f"{k:>8s} " for k in self.keys) + "  score   s/step")
        self.last_step = step
        self.bar.update(max(0, min(step, self.cfg.steps) - self.bar.n))
        self.bar.refresh()
        if self.verbose:
            return
        rollout_file = self.cfg.out / "rollouts" / f"{step}.jsonl"
        rewards = report.step_rewards(rollout_file, self.task) if rollout_file.exists() else {}
        self.print(
            f"  {step:3d}/{self.cfg.steps:<3d} "
            + "".join(f"   {fmt(rewards.get(k))}" for k in self.keys)
            + f"   {fmt(metrics.get('critic/score/mean'))}   {metrics['timing_s/step']:5.1f}"
        )

    def reached(self) -> str:
        """How far the run got, in words."""
        if self.last_step is not None:
            return f"after step {self.last_step} of {self.cfg.steps}"
        if self.phases:
            return f"before the first step (reached: {self.phases[-1]})"
        return "while verl was starting (Ray not up yet)"

    def close(self) -> None:
        self.bar.close()
