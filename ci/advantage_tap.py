"""Record what the GDPO estimator saw and returned, for ci/recompute_advantages.py (GPU regression, exact check).

Loaded in every verl process through ``VERL_USE_EXTERNAL_MODULES=advantage_tap`` (with ``ci/`` on PYTHONPATH); does
nothing unless ``GDPO_CI_TAP_DIR`` is set. Per estimator call it writes ``<dir>/<call>.jsonl``: a header line with the
GDPO settings, then one line per row with its group label, response length, KL shaping, the reward components the
estimator received and the token-level advantage verl trains on (first response token; ``spread`` = max
|difference| over the row's response tokens). The check compares the components with verl's own rollout dump where
the dump holds them (legacy trainer), and recomputes the advantages with ci/reference_gdpo.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

TAP_ENV = "GDPO_CI_TAP_DIR"
_state: dict[str, Any] = {"call": 0, "pending": None}


def _header(cfg: Any) -> dict[str, Any]:
    raw = dataclasses.asdict(cfg)
    raw["conditions"] = [dataclasses.asdict(c) for c in cfg.conditions]
    return raw


def _wrap_compute(fn: Any) -> Any:
    def compute_gdpo(components, index, lengths, cfg, kl_shaping=None, *rest, **kwargs):  # noqa: ANN001, ANN202
        out = fn(components, index, lengths, cfg, kl_shaping, *rest, **kwargs)  # same arguments as the wrapped one
        if cfg.weight_schedule:
            raise RuntimeError("the advantage tap does not record weight schedules: use constant weights in this run")
        labels = [_label(x) for x in (index.tolist() if hasattr(index, "tolist") else index)]
        kl = None if kl_shaping is None else [float(x) for x in kl_shaping.tolist()]
        comps = [[_finite(v) for v in row] for row in components.double().tolist()]
        _state["pending"] = (_header(cfg), labels, [float(x) for x in lengths.tolist()], kl, comps)
        return out

    return compute_gdpo


def _label(x: Any) -> int | str:
    try:
        return int(x)
    except (TypeError, ValueError):
        return str(x)  # the V1 trainer's uid strings


def _finite(v: float) -> float | None:
    return v if v == v and abs(v) != float("inf") else None


def _wrap_to_tokens(fn: Any) -> Any:
    def to_tokens(scalars, response_mask):  # noqa: ANN001, ANN202 - same as wrapped
        tokens = fn(scalars, response_mask)
        pending, _state["pending"] = _state["pending"], None
        if pending is not None and tokens.shape[0] == len(pending[1]):
            _write(pending, tokens, response_mask)
        return tokens

    return to_tokens


def _write(pending: tuple, tokens: Any, mask: Any) -> None:
    header, labels, lengths, kl, comps = pending
    _state["call"] += 1
    path = os.path.join(os.environ[TAP_ENV], f"{_state['call']}.jsonl")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    valid = mask.bool().cpu()
    values = tokens.detach().double().cpu()
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"gdpo": header}) + "\n")
        for i, label in enumerate(labels):
            row = values[i][valid[i]]
            first = float(row[0]) if row.numel() else 0.0
            spread = float((row - first).abs().max()) if row.numel() else 0.0
            rec = {"group": label, "length": lengths[i], "kl": None if kl is None else kl[i], "components": comps[i]}
            f.write(json.dumps({**rec, "advantage": first, "spread": spread}) + "\n")


def install() -> None:
    from gdpo_verl import estimator

    if not getattr(estimator.compute_gdpo, "__ci_tap__", False):
        estimator.compute_gdpo = _wrap_compute(estimator.compute_gdpo)
        estimator.to_tokens = _wrap_to_tokens(estimator.to_tokens)
        estimator.compute_gdpo.__ci_tap__ = True


if os.environ.get(TAP_ENV):
    install()
