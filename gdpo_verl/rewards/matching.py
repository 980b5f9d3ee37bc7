"""Maximum-weight one-to-one matching (rectangular assignment), Hungarian algorithm, no scipy needed."""

from __future__ import annotations

import math
from collections.abc import Sequence


def max_weight_matching(weights: Sequence[Sequence[float]]) -> tuple[float, list[tuple[int, int]]]:
    """Best total weight of a matching between rows and columns (each used at most once) and its (row, col) pairs.

    Weights must be ≥ 0 (then a maximum matching can always be completed to a full one on the smaller side).
    O(n²·m) shortest-augmenting-path Hungarian on costs = max − w.
    """
    rows = len(weights)
    cols = len(weights[0]) if rows else 0
    if rows == 0 or cols == 0:
        return 0.0, []
    transpose = rows > cols
    w = [list(r) for r in zip(*weights, strict=True)] if transpose else [list(r) for r in weights]
    n, m = len(w), len(w[0])  # n <= m
    top = max(max(r) for r in w)
    cost = [[top - x for x in r] for r in w]
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    match_col = [0] * (m + 1)  # column j (1-based) -> row (1-based), 0 = free
    for i in range(1, n + 1):
        match_col[0] = i
        j0 = 0
        minv = [math.inf] * (m + 1)
        used = [False] * (m + 1)
        way = [0] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = match_col[j0], math.inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[match_col[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if match_col[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match_col[j0] = match_col[j1]
            j0 = j1
    pairs = [(match_col[j] - 1, j - 1) for j in range(1, m + 1) if match_col[j]]
    if transpose:
        pairs = [(c, r) for r, c in pairs]
    pairs.sort()
    total = sum(weights[r][c] for r, c in pairs)
    return total, pairs
