"""A rollout for verl on CPU: ``transformers`` ``generate`` behind verl's rollout-replica interface.

verl's rollouts are vLLM / SGLang / TensorRT-LLM servers, none of which runs on a CPU. This module supplies the two
pieces verl looks up by ``actor_rollout_ref.rollout.name`` (:data:`ROLLOUT_NAME`):

* :class:`HFReplica` (``RolloutReplicaRegistry``): starts one :class:`HFServer` Ray actor per replica. The agent loop
  sends it token-in/token-out ``generate`` requests; concurrent requests are batched into one ``model.generate``.
* :class:`HFServerAdapter` (verl's in-worker rollout, ``get_rollout_class``): lives in the FSDP actor worker and
  receives the trained weights at each weight sync, which it forwards to the server actor.

Imported only when verl resolves the rollout by name, so the plugin import stays cheap.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import ray
import torch
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config import HFModelConfig
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput
from verl.workers.rollout.utils import ensure_async_iterator

from .mode import ROLLOUT_NAME

logger = logging.getLogger("gdpo_verl")

# Requests arriving within this window are generated together (the agent loop sends them all at once).
BATCH_WINDOW_S = 0.02


def server_name(replica_rank: int, suffix: str = "") -> str:
    return f"gdpo_hf_server_{replica_rank}{suffix}"


def _sampling_key(params: dict[str, Any], max_tokens: int) -> tuple:
    return (
        float(params.get("temperature", 1.0)),
        float(params.get("top_p", 1.0)),
        int(params.get("top_k", -1) or -1),
        float(params.get("repetition_penalty", 1.0)),
        bool(params.get("logprobs", False)),
        max_tokens,
    )


class HFServer:
    """One rollout server: a ``transformers`` causal LM on the CPU, generating token ids for the agent loop."""

    def __init__(self, config: Any, model_config: Any, replica_rank: int) -> None:
        from transformers import AutoModelForCausalLM

        self.config = omega_conf_to_dataclass(config)
        self.model_config: HFModelConfig = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.replica_rank = replica_rank
        self.global_steps: int | None = None
        torch.manual_seed(int(getattr(self.config, "seed", 0) or 0) + replica_rank)
        self.model = AutoModelForCausalLM.from_pretrained(
            self.model_config.local_path,
            dtype=torch.float32,
            attn_implementation="sdpa",
            trust_remote_code=self.model_config.trust_remote_code,
        ).eval()
        tok = self.model_config.tokenizer
        gen = self.model_config.generation_config
        eos = getattr(gen, "eos_token_id", None) if gen is not None else None
        eos = eos if eos is not None else tok.eos_token_id
        self.eos_ids: list[int] = [int(e) for e in (eos if isinstance(eos, list | tuple) else [eos])]
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else self.eos_ids[0])
        self._pending: list[tuple[tuple, list[int], asyncio.Future]] = []
        self._wake: asyncio.Event | None = None
        self._batcher: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- generation ----------------------------------------------------------------------------------------------
    async def generate(
        self, prompt_ids: list[int], sampling_params: dict[str, Any], request_id: str, **kwargs: Any
    ) -> TokenOutput:
        if kwargs.get("image_data") or kwargs.get("video_data") or kwargs.get("audio_data"):
            raise NotImplementedError(f"rollout {ROLLOUT_NAME!r} is text-only")
        prompt_ids = [int(t) for t in prompt_ids]
        params = dict(sampling_params)
        max_tokens = params.pop("max_tokens", params.pop("max_new_tokens", None))
        budget = self.config.prompt_length + self.config.response_length - len(prompt_ids)
        if max_tokens is None:
            max_tokens = min(self.config.response_length, budget)
        max_tokens = max(1, min(int(max_tokens), max(budget, 1)))
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((_sampling_key(params, max_tokens), prompt_ids, future))
        if self._batcher is None or self._batcher.done() or self._loop is not loop:
            self._loop, self._wake = loop, asyncio.Event()
            self._batcher = loop.create_task(self._run_batches(self._wake))
        self._wake.set()
        token_ids, log_probs = await future
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    async def _run_batches(self, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            await asyncio.sleep(BATCH_WINDOW_S)
            pending, self._pending = self._pending, []
            if not pending:
                continue
            groups: dict[tuple, list[tuple[list[int], asyncio.Future]]] = {}
            for key, ids, fut in pending:
                groups.setdefault(key, []).append((ids, fut))
            for key, items in groups.items():
                try:
                    results = self._generate_batch(key, [ids for ids, _ in items])
                except Exception as exc:  # noqa: BLE001 - hand the error to every waiting request
                    for _, fut in items:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), res in zip(items, results, strict=True):
                    if not fut.done():
                        fut.set_result(res)

    @torch.no_grad()
    def _generate_batch(self, key: tuple, prompts: list[list[int]]) -> list[tuple[list[int], list[float] | None]]:
        temperature, top_p, top_k, rep_penalty, want_logprobs, max_tokens = key
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding
            input_ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            attention[i, width - len(p) :] = 1
        sample = temperature > 0
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=max_tokens,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=top_p if sample else None,
            top_k=(top_k if top_k > 0 else 0) if sample else None,
            repetition_penalty=rep_penalty,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            return_dict_in_generate=True,
            output_logits=want_logprobs,
        )
        new = out.sequences[:, width:]
        logprobs = None
        if want_logprobs:  # log-probs of the sampled tokens under the temperature-scaled model distribution
            logits = torch.stack(out.logits, dim=1).float()
            if sample:
                logits = logits / temperature
            logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
        results = []
        for i in range(len(prompts)):
            ids = new[i].tolist()
            end = next((j + 1 for j, t in enumerate(ids) if t in self.eos_ids), len(ids))  # keep the EOS token
            results.append((ids[:end], logprobs[i, :end].tolist() if logprobs is not None else None))
        return results

    # ---- weights -------------------------------------------------------------------------------------------------
    async def update_weights(self, state: dict[str, torch.Tensor], global_steps: int | None = None) -> int:
        """Load the trainer's full (unsharded) weights; returns how many tensors were loaded."""
        own = self.model.state_dict()
        unknown = [k for k in state if k not in own]
        if unknown:
            raise KeyError(f"{ROLLOUT_NAME}: weights not in the rollout model: {unknown[:5]}")
        self.model.load_state_dict(state, strict=False)
        if "lm_head.weight" not in state and getattr(self.model.config, "tie_word_embeddings", False):
            self.model.tie_weights()
        self.global_steps = global_steps
        return len(state)

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    # ---- life-cycle calls verl makes on every rollout server (nothing to free on a CPU) -----------------------------
    async def wake_up(self, tags: list[str] | None = None) -> None:
        pass

    async def sleep(self) -> None:
        pass

    async def clear_kv_cache(self) -> None:
        pass

    async def release_kv_cache(self) -> None:
        pass

    async def resume_kv_cache(self) -> None:
        pass

    async def wait_for_requests_to_drain(self) -> None:
        while self._pending:
            await asyncio.sleep(BATCH_WINDOW_S)

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False) -> dict:
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        pass

    async def start_profile(self, **kwargs: Any) -> None:
        pass

    async def stop_profile(self) -> None:
        pass


class HFReplica(RolloutReplica):
    """A rollout replica served by one :class:`HFServer` actor on the node of its first worker."""

    async def launch_servers(self) -> None:
        if self.rollout_mode is not None and self.rollout_mode.value != "hybrid":
            raise NotImplementedError(f"rollout {ROLLOUT_NAME!r} supports the hybrid (colocated actor) mode only")
        node_id = await self.workers[0].__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
        name = server_name(self.replica_rank, self.name_suffix)
        server = (
            ray.remote(HFServer)
            .options(
                name=name,
                num_cpus=0,
                max_concurrency=self.max_concurrency,
                scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node_id, soft=False),
                runtime_env={"env_vars": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}},
            )
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        )
        await server.wake_up.remote()  # waits until the model is loaded
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"{ROLLOUT_NAME}-replica-{self.replica_rank}"  # a name for the load balancer


class HFServerAdapter(BaseRollout):
    """verl's in-worker rollout handle: forwards the actor's weights to this replica's :class:`HFServer`."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any = None, replica_rank: int = -1, **kwargs):
        super().__init__(config, model_config, device_mesh)
        if device_mesh is not None:  # hybrid: dp rank = replica, leader = first rank inside the replica
            self.replica_rank = device_mesh["dp"].get_local_rank()
            coords = [device_mesh[n].get_local_rank() for n in device_mesh.mesh_dim_names if n != "dp"]
            self.is_leader_rank = all(c == 0 for c in coords)
        else:
            self.replica_rank = replica_rank
            self.is_leader_rank = int(os.environ.get("RANK", "0")) == 0
        self._server = None

    async def update_weights(self, weights: Any, wire_format: str = "named_tensors", **kwargs: Any) -> None:
        if wire_format != "named_tensors":
            raise NotImplementedError(f"rollout {ROLLOUT_NAME!r} takes full named tensors, not {wire_format!r}")
        if kwargs.get("peft_config") is not None:
            raise NotImplementedError(f"rollout {ROLLOUT_NAME!r}: set actor_rollout_ref.model.lora.merge=True for LoRA")
        state = {}
        async for name, tensor in ensure_async_iterator(weights):  # every rank must drain it (collectives inside)
            if self.is_leader_rank:
                state[name] = tensor.detach().to("cpu", torch.float32).clone()
        if not self.is_leader_rank:
            return
        if self._server is None:
            self._server = ray.get_actor(server_name(self.replica_rank))
        await self._server.update_weights.remote(state, kwargs.get("global_steps"))

    async def resume(self, tags: list[str]) -> None:
        pass

    async def release(self) -> None:
        pass
