"""Length reward shared by the math and code suites: 1 when the response has at most ``max_tokens`` tokens."""

from __future__ import annotations

from typing import Any


def length(
    solution_str: str, num_tokens: int | None = None, max_tokens: int = 4000, tokenizer: Any = None, **_: Any
) -> float:
    """1.0 when the response has at most ``max_tokens`` tokens, else 0.0."""
    if num_tokens is None:
        if tokenizer is None:
            raise ValueError("length needs num_tokens (passed by the manager) or a tokenizer")
        num_tokens = len(tokenizer.encode(solution_str, add_special_tokens=False))
    return float(int(num_tokens) <= int(max_tokens))
