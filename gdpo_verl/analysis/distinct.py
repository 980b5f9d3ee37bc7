"""Distinct advantage groups (paper Fig. 3), counted exactly.

Over every multiset of G rollouts whose reward vectors lie in {0,1}^N: the number of distinct sorted advantage tuples
(rounded to 6 decimals) under GRPO (sum, then z-score), GRPO w/o std (sum, then centre) and GDPO (per-reward z-score,
then sum with weights 1). Unbiased std, 0 for a flat group, no batch step, no epsilon.

Exact methods:
- GRPO, GRPO w/o std: the tuple depends only on the rollouts' reward sums, and every multiset of G sums in {0..N} is
  reached, so the C(N+G, G) multisets of sums are enumerated.
- GDPO ``rows``: enumerate the C(2^N+G-1, G) multisets of reward vectors (cheap for small N).
- GDPO ``columns``: A = sum over rewards of the normalized column, a vector in R^G set by the column's G bits alone.
  Row order and column order do not change the sorted tuple, so the reachable tuples are built one reward at a time:
  S_k = {sort(x + v) : x in S_{k-1}, v in V}, V = the 2^G normalized columns. V is closed under row permutations,
  so one representative per sorted state suffices. Cost ~ |S_k| * 2^G per reward (cheap for small G), and one pass
  gives every N up to the largest.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from gdpo_verl.analysis.common import AnalysisError
from gdpo_verl.core import group_normalize

METHODS = ("grpo", "grpo_no_std", "gdpo")
ROWS_LIMIT = 300_000_000  # max G * N * multisets for ``rows`` (under a minute on one free core)
FAST_ROWS = 2_000_000  # below this ``rows`` is always quick
CHUNK = 4_000_000  # float64 elements per chunk (both methods)
STEP_LIMIT = 300_000_000  # max states * 2^G * G elements in one ``columns`` step (about a minute)
STATE_SCALE = 1e9  # states are merged when equal to 9 decimals (finer than the final 6)


def multisets(n_types: int, size: int) -> torch.Tensor:
    """All non-decreasing index tuples over range(n_types): (C(n_types+size-1, size), size) long."""
    seqs = torch.arange(n_types).unsqueeze(1)
    for _ in range(size - 1):
        last = seqs[:, -1]
        reps = n_types - last
        starts = torch.cumsum(reps, 0) - reps
        offset = torch.arange(int(reps.sum())) - starts.repeat_interleave(reps)
        nxt = last.repeat_interleave(reps) + offset
        seqs = torch.cat([seqs.repeat_interleave(reps, dim=0), nxt.unsqueeze(1)], dim=1)
    return seqs


def count_tuples(adv: torch.Tensor, decimals: int = 6) -> int:
    """Distinct sorted rows of ``adv`` (M, G) after rounding."""
    keys = torch.round(adv.sort(dim=1).values * 10**decimals).to(torch.int64)
    return int(torch.unique(keys, dim=0).shape[0])


def _normalize_groups(values: torch.Tensor, scale: bool = True) -> torch.Tensor:
    """values (M, G, K): group_normalize with one group per row of M; returns (M, G, K)."""
    m, g, k = values.shape
    gid = torch.arange(m).repeat_interleave(g)
    return group_normalize(values.reshape(m * g, k), gid, m, eps=0.0, scale_by_std=scale).reshape(m, g, k)


def count_grpo(n_rewards: int, n_rollouts: int) -> dict[str, int]:
    """GRPO and GRPO w/o std, from the multisets of reward sums."""
    sums = multisets(n_rewards + 1, n_rollouts).to(torch.float64).unsqueeze(-1)
    return {
        "grpo": count_tuples(_normalize_groups(sums, True)[..., 0]),
        "grpo_no_std": count_tuples(_normalize_groups(sums, False)[..., 0]),
    }


def rows_cost(n_rewards: int, n_rollouts: int) -> int:
    return math.comb(2**n_rewards + n_rollouts - 1, n_rollouts) * n_rollouts * n_rewards


def multiset_chunks(n_types: int, size: int, limit: int, lo: int = 0) -> Iterator[torch.Tensor]:
    """``multisets`` over range(lo, n_types) in pieces of at most ~``limit`` tuples, split on the leading index."""
    if size == 1 or math.comb(n_types - lo + size - 1, size) <= limit:
        yield multisets(n_types - lo, size) + lo
        return
    for first in range(lo, n_types):
        for rest in multiset_chunks(n_types, size - 1, limit, first):
            yield torch.cat([torch.full((rest.shape[0], 1), first), rest], dim=1)


def count_gdpo_rows(n_rewards: int, n_rollouts: int) -> int:
    """GDPO by enumerating every multiset of G reward vectors as batches of groups (one group per multiset),
    keeping the set of distinct rounded sorted tuples across chunks."""
    if rows_cost(n_rewards, n_rollouts) > ROWS_LIMIT:
        raise AnalysisError(f"N={n_rewards}, G={n_rollouts}: too many multisets for the rows method")
    bits = (torch.arange(2**n_rewards).unsqueeze(1) >> torch.arange(n_rewards)) & 1  # (2^N, N)
    seen = torch.empty(0, n_rollouts, dtype=torch.int64)
    parts: list[torch.Tensor] = []
    pending = 0
    for idx in multiset_chunks(2**n_rewards, n_rollouts, max(1, CHUNK // (n_rollouts * n_rewards))):
        adv = _normalize_groups(bits[idx].to(torch.float64)).sum(dim=-1)  # (M, G)
        parts.append(torch.unique(torch.round(adv.sort(dim=1).values * 1e6).to(torch.int64), dim=0))
        pending += parts[-1].shape[0]
        if pending > max(seen.shape[0], CHUNK // n_rollouts):  # merge rarely: amortized n log n
            seen, parts, pending = torch.unique(torch.cat([seen, *parts]), dim=0), [], 0
    return int(torch.unique(torch.cat([seen, *parts]), dim=0).shape[0])


def _column_vectors(g: int) -> torch.Tensor:
    """(2^G, G): every binary column of length G, normalized as its own group."""
    cols = ((torch.arange(2**g).unsqueeze(1) >> torch.arange(g)) & 1).to(torch.float64)
    return _normalize_groups(cols.unsqueeze(-1))[..., 0]


# G -> (sorted states after the last reward added, counts for N = 1, 2, ...); resumed when a larger N is asked
_COLUMNS_CACHE: dict[int, tuple[torch.Tensor, list[int]]] = {}


def count_gdpo_columns(n_rollouts: int, n_max: int) -> list[int]:
    """GDPO counts for N = 1..n_max at fixed G, by the one-reward-at-a-time state recursion."""
    g = n_rollouts
    if g > 16:
        raise AnalysisError(f"G={g}: 2^G column patterns are too many for the columns method")
    states, counts = _COLUMNS_CACHE.get(g, (torch.zeros(1, g, dtype=torch.float64), []))
    v = _column_vectors(g)
    step = max(1, CHUNK // (v.shape[0] * g))
    for n in range(len(counts) + 1, n_max + 1):
        if states.shape[0] * v.numel() > STEP_LIMIT:
            raise AnalysisError(
                f"G={g}: N={n} needs {states.shape[0]} states x 2^G patterns, too large for an exact "
                f"count here (largest at this G: N={n - 1})"
            )
        parts = []
        for i in range(0, states.shape[0], step):
            x = (states[i : i + step].unsqueeze(1) + v.unsqueeze(0)).reshape(-1, g).sort(dim=1).values
            parts.append(torch.unique(torch.round(x * STATE_SCALE).to(torch.int64), dim=0))
        keys = torch.unique(torch.cat(parts), dim=0)
        states = keys.to(torch.float64) / STATE_SCALE
        counts = counts + [count_tuples(states)]
        _COLUMNS_CACHE[g] = (states, counts)
    return counts[:n_max]


def pick_method(n_rewards: int, n_rollouts: int) -> str:
    """``rows`` when its batch is small; ``columns`` for G <= 6 (2^G patterns per reward); else ``rows`` up to its
    limit; else ``columns`` up to G = 10; else refuse (no estimate)."""
    cost = rows_cost(n_rewards, n_rollouts)
    if cost <= FAST_ROWS:
        return "rows"
    if n_rollouts <= 6:
        return "columns"
    if cost <= ROWS_LIMIT:
        return "rows"
    if n_rollouts <= 10:
        return "columns"
    raise AnalysisError(
        f"N={n_rewards}, G={n_rollouts}: no exact method fits here (rows: C(2^N+G-1, G) multisets; "
        f"columns: 2^G patterns per reward); try a smaller N or G"
    )


def count_distinct(pairs: list[tuple[int, int]], method: str = "auto") -> list[dict[str, int | str]]:
    """Counts for each (N, G) pair, in order. ``columns`` runs once per G up to the largest N it needs."""
    chosen = {p: (pick_method(*p) if method == "auto" else method) for p in pairs}
    by_g: dict[int, int] = {}
    for (n, g), m in chosen.items():
        if m == "columns":
            by_g[g] = max(by_g.get(g, 0), n)
    col_counts = {g: count_gdpo_columns(g, n_max) for g, n_max in by_g.items()}
    out: list[dict[str, int | str]] = []
    for n, g in pairs:
        gdpo = col_counts[g][n - 1] if chosen[(n, g)] == "columns" else count_gdpo_rows(n, g)
        out.append({"rewards": n, "rollouts": g, **count_grpo(n, g), "gdpo": gdpo, "method": chosen[(n, g)]})
    return out
