"""``.cuda()`` on tensors and modules while megatron-core / mbridge build the model (spec item 3).

Two construction calls move things with a method rather than a device argument, which no module-level view of
``torch`` can redirect:

* mbridge's ``get_model`` (``mbridge.core.util``) moves each freshly built model chunk with
  ``model_module.cuda(torch.cuda.current_device())``;
* megatron-core's ``LanguageModule.setup_embeddings_and_output_layer`` moves the tied embedding weight with
  ``weight.data = weight.data.cuda()`` before all-reducing it between the first and last pipeline stage.

For the duration of those calls only (model construction, single-threaded, once per model chunk),
``torch.Tensor.cuda`` and ``torch.nn.Module.cuda`` leave their object on the CPU; both are restored when the
outermost call returns or raises.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from types import ModuleType

import torch

from ...patching import is_patched, mark
from .pins import attribute, qualname, source_has

# module -> (owner of the function: "" for the module itself, function name, source fragment it must still contain)
SITES: dict[str, tuple[str, str, str]] = {
    "mbridge.core.util": ("", "get_model", "model_module.cuda(torch.cuda.current_device())"),
    "megatron.core.models.common.language_module.language_module": (
        "LanguageModule",
        "setup_embeddings_and_output_layer",
        "weight.data = weight.data.cuda()",
    ),
}
_lock = threading.RLock()
_depth = 0


def _tensor_stays(self: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return self


def _module_stays(self: torch.nn.Module, *args, **kwargs) -> torch.nn.Module:
    return self


@contextlib.contextmanager
def cuda_stays_on_cpu():
    """``Tensor.cuda`` / ``Module.cuda`` as no-ops inside the block (re-entrant)."""
    global _depth
    with _lock:
        if _depth == 0:
            real = torch.Tensor.cuda, torch.nn.Module.cuda
            torch.Tensor.cuda, torch.nn.Module.cuda = _tensor_stays, _module_stays
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
            if _depth == 0:
                torch.Tensor.cuda, torch.nn.Module.cuda = real


def patch(module: ModuleType) -> None:
    owner_name, name, fragment = SITES[module.__name__]
    owner = attribute(module, owner_name, qualname(module, owner_name)) if owner_name else module
    where = qualname(module, f"{owner_name}.{name}" if owner_name else name)
    original = attribute(owner, name, where)
    if is_patched(original):
        return
    source_has(original, (fragment,), where)

    @functools.wraps(original)
    def call_on_cpu(*args, **kwargs):
        with cuda_stays_on_cpu():
            return original(*args, **kwargs)

    setattr(owner, name, mark(call_on_cpu))
