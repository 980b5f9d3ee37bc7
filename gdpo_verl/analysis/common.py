"""Helpers shared by the analysis commands: a user-facing error, range parsing, plain-text tables."""

from __future__ import annotations

from collections.abc import Sequence


class AnalysisError(Exception):
    """Bad input (missing file, unknown column or key): the CLI prints the message and exits non-zero."""


def parse_range(text: str, name: str, lo: int = 1) -> list[int]:
    """'4' -> [4]; '2-16' -> [2..16]; '2,4,8' -> [2, 4, 8]."""
    out: list[int] = []
    try:
        for part in text.split(","):
            a, sep, b = part.strip().partition("-")
            first, last = int(a), int(b) if sep else int(a)
            if last < first:
                raise ValueError
            out.extend(range(first, last + 1))
    except ValueError:
        msg = f"{name}: expected a number, a range like 2-16 or a list like 2,4,8; got {text!r}"
        raise AnalysisError(msg) from None
    if min(out) < lo:
        raise AnalysisError(f"{name}: values must be >= {lo}; got {text!r}")
    return sorted(set(out))


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if value == value else "nan"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Right-aligned plain-text table."""
    cells = [list(header)] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save_figure(fig: object, out: object) -> None:
    """Write a matplotlib figure and close it; an unwritable path is an AnalysisError."""
    import matplotlib.pyplot as plt

    try:
        fig.savefig(out, dpi=120)  # type: ignore[attr-defined]
    except OSError as e:
        raise AnalysisError(f"cannot write {out}: {e}") from None
    finally:
        plt.close(fig)  # type: ignore[arg-type]
