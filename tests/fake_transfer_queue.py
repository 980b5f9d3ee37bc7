"""An in-process stand-in for TransferQueue's KV interface, storing rows the way verl's agent loop puts them
(verl's own ``list_of_dict_to_tensordict``: jagged tensors for per-token fields, NonTensorStack for the rest)."""

from __future__ import annotations

from typing import Any

from tensordict import TensorDict
from verl.utils.tensordict_utils import list_of_dict_to_tensordict


class FakeTransferQueue:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def put_rows(self, keys: list[str], rows: list[dict[str, Any]], partition_id: str = "train") -> None:
        for key, row in zip(keys, rows, strict=True):
            self.rows[(partition_id, key)] = dict(row)

    def kv_batch_get(self, keys, partition_id, select_fields=None):
        rows = [self.rows[(partition_id, k)] for k in keys]
        wanted = select_fields or list(rows[0])
        fields = [f for f in wanted if all(f in r for r in rows)]  # like TQ: absent fields are not returned
        if not fields:  # like TQ: an empty TensorDict (indexing it raises 'key "x" not found in TensorDict')
            return TensorDict({}, batch_size=[len(rows)])
        return list_of_dict_to_tensordict([{f: r[f] for f in fields} for r in rows])

    def kv_batch_put(self, keys, partition_id, fields, tags=None):
        for i, key in enumerate(keys):
            row = self.rows.setdefault((partition_id, key), {})  # like TQ: a new key is a new row
            for name in fields.keys():
                row[name] = fields[name][i]
