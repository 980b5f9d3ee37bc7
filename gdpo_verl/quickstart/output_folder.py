"""The quickstart's output folder: a run writes only into a fresh one, unless asked to replace or continue a run.

Nothing a user produced is deleted or replaced without a flag saying so: ``--overwrite`` removes the quickstart's own
outputs (and only those) first; ``--resume`` continues from the run's last checkpoint, keeping ``checkpoints/`` and
the rollout dumps up to that checkpoint, and setting the previous logs aside (``metrics.jsonl.1``, ...).
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Everything a quickstart run writes into its folder (files and folders).
OUTPUTS = (
    "assets",
    "rollouts",
    "checkpoints",
    "metrics.jsonl",
    "verl.log",
    "summary.json",
    "curves.png",
    "command.txt",
    # --nodes / --ray-address (gdpo_verl/quickstart/cluster.py): the local cluster's Ray folder and log, placements
    "ray",
    "ray_cluster.log",
    "placements.json",
)
# What a resumed run starts anew (verl's file logger truncates metrics.jsonl): the previous ones are set aside.
RESTARTED = ("metrics.jsonl", "verl.log", "summary.json")
CHECKPOINT_MARK = Path("checkpoints") / "latest_checkpointed_iteration.txt"  # verl's record of its last checkpoint


class FolderError(ValueError):
    """The output folder cannot be used as asked; the message says why and what to do."""


def is_fresh(out: Path) -> bool:
    """Absent, or an empty folder."""
    return not out.exists() or (out.is_dir() and not any(out.iterdir()))


def check(out: Path, overwrite: bool = False, resume: bool = False) -> None:
    """Raise :class:`FolderError` unless a run may write into ``out`` as asked (nothing is changed here)."""
    if out.exists() and not out.is_dir():
        raise FolderError(f"--out {out} is an existing file, not a folder; name a folder (it is created if missing)")
    if overwrite and resume:
        raise FolderError("--overwrite and --resume exclude each other: replace the run, or continue it")
    if resume:
        if not (out / CHECKPOINT_MARK).is_file():
            raise FolderError(
                f"--resume: no checkpoint in {out / 'checkpoints'} (verl writes {CHECKPOINT_MARK.name} there when "
                "it saves one; the quickstart saves checkpoints only with `-- trainer.save_freq=N`)"
            )
        return
    if overwrite or is_fresh(out):
        return
    held = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
    shown = ", ".join(held[:8]) + (f" and {len(held) - 8} more" if len(held) > 8 else "")
    raise FolderError(
        f"{out} already holds files ({shown}); a run there would replace them. Choose another --out, or pass "
        "--overwrite to replace that run (--resume continues it from its last checkpoint)"
    )


def checkpoint_step(out: Path) -> int:
    """The step of the run's last checkpoint."""
    return int((out / CHECKPOINT_MARK).read_text().strip())


def _set_aside(path: Path) -> Path | None:
    """Rename ``path`` to ``<name>.<k>``, the first k not taken; None when there is no such file."""
    if not path.exists():
        return None
    k = 1
    while path.with_name(f"{path.name}.{k}").exists():
        k += 1
    return path.rename(path.with_name(f"{path.name}.{k}"))


def prepare(out: Path, overwrite: bool = False, resume: bool = False) -> list[str]:
    """Make ``out`` ready for the run :func:`check` accepted; returns what was changed, in words.

    ``overwrite``: the quickstart's outputs go. ``resume``: the rollout dumps after the checkpoint go (verl appends
    to a step's dump, and would write those steps again); the previous metrics.jsonl, verl.log and summary.json are
    renamed to ``<name>.1`` (``.2``, ...), so that this run's summary is made from this run's metrics only."""
    check(out, overwrite, resume)
    removed: list[str] = []
    if overwrite:
        set_aside = sorted(p.name for name in RESTARTED for p in out.glob(f"{name}.*") if p.suffix[1:].isdigit())
        for name in (*OUTPUTS, *set_aside):
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            removed.append(f"removed {name}")
    if resume:
        last = checkpoint_step(out)
        for dump in sorted((out / "rollouts").glob("*.jsonl")):
            if dump.stem.isdigit() and int(dump.stem) > last:
                dump.unlink()
                removed.append(f"removed rollouts/{dump.name}")
        for name in RESTARTED:
            kept = _set_aside(out / name)
            if kept:
                removed.append(f"kept {name} as {kept.name}")
    out.mkdir(parents=True, exist_ok=True)
    return removed
