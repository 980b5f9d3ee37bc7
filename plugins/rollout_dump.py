"""V1 trainer rollout dump (``trainer.rollout_data_dir``): each row's reward components in verl's own ``{step}.jsonl``.

verl's V1 ``PPOTrainer._log_rollout_data`` writes only the total ``score`` (and the row key as ``uid``); the legacy and
separated trainers already write every ``reward_extra_info`` key. Wrapping it, the rows' components are read from
TransferQueue (the same fields the estimator reads) and handed to verl's ``_dump_generations`` as extra columns, with
``is_padding`` marking verl's synthetic padding rows, so ``gdpo-verl analyze rollouts RUN/rollouts`` sees the rewards on
every trainer path and for any estimator. Columns verl writes itself (``input``, ``output``, ``gts``, ``score``,
``step``, ``uid``) are left as verl has them.
"""

from __future__ import annotations

import contextvars
import functools
import sys
from typing import Any

from . import verl_shapes
from .patching import wrap_once
from .tq_rows import fetch_components, padding_rows, scalar

PADDING_COLUMN = "is_padding"
VERL_COLUMNS = ("input", "output", "gts", "score", "step")  # what verl's _write_generations writes itself
# row key -> {column: value} for the dump verl is writing now
_columns: contextvars.ContextVar[dict[str, dict[str, Any]] | None] = contextvars.ContextVar(
    "gdpo_verl_rollout_columns", default=None
)


def row_columns(tq: Any, batch: Any, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Each row's reward components (plain JSON values) and padding flag, by row key."""
    components = fetch_components(tq, batch, keys)
    padding = padding_rows(batch.tags)
    return {
        key: {**{k: scalar(col[i]) for k, col in components.items()}, PADDING_COLUMN: bool(padding[i])}
        for i, key in enumerate(batch.keys)
    }


def _wrap_log(original):
    @functools.wraps(original)
    def _log_rollout_data(self, batch, *args, **kwargs):
        tq = sys.modules[verl_shapes.V1_ROLLOUT_DUMP.module].tq
        keys = list(self.config.algorithm.get("gdpo_reward_keys") or [])  # top-level fields (colocated reward model)
        token = _columns.set(row_columns(tq, batch, keys))
        try:
            return original(self, batch, *args, **kwargs)
        finally:
            _columns.reset(token)

    return _log_rollout_data


def _wrap_dump(original):
    @functools.wraps(original)
    def _dump_generations(self, inputs, outputs, gts, scores, reward_extra_infos_dict, dump_path):
        columns = _columns.get()
        row_keys = reward_extra_infos_dict.get("uid") if columns is not None else None
        if row_keys is not None:  # a training rollout dump (validation dumps have no row keys of ours)
            reward_extra_infos_dict = dict(reward_extra_infos_dict)
            names = dict.fromkeys(name for key in row_keys for name in columns.get(key, {}))
            for name in names:
                if name not in reward_extra_infos_dict and name not in VERL_COLUMNS:
                    reward_extra_infos_dict[name] = [columns.get(key, {}).get(name) for key in row_keys]
        return original(self, inputs, outputs, gts, scores, reward_extra_infos_dict, dump_path)

    return _dump_generations


def _patch(module: Any) -> None:
    wrap_once(module.PPOTrainer, "_log_rollout_data", _wrap_log)
    wrap_once(module.PPOTrainer, "_dump_generations", _wrap_dump)


def install() -> None:
    verl_shapes.when_shaped(verl_shapes.V1_ROLLOUT_DUMP, _patch)
