"""The transformers rollout: batched token-in/token-out generation, log-probs, weight updates (no Ray needed)."""

from __future__ import annotations

import asyncio

import pytest
import torch

pytest.importorskip("verl")
pytestmark = pytest.mark.verl

from omegaconf import OmegaConf  # noqa: E402

from gdpo_verl.quickstart import assets  # noqa: E402

SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return assets.build(tmp_path_factory.mktemp("assets"), seed=0, n_train=8, n_val=4)


@pytest.fixture(scope="module")
def server(built):
    from gdpo_verl_plugins.cpu.rollout import HFServer

    cfg = OmegaConf.create(
        {"_target_": "verl.workers.config.RolloutConfig", "name": "hf_cpu", "prompt_length": 32, "response_length": 8}
    )
    return HFServer(cfg, OmegaConf.create({"path": str(built.model_dir)}), replica_rank=0)


def _prompts(server, n):
    tok = server.model_config.tokenizer
    msgs = [[{"role": "user", "content": f"find the digit: a {i} b"}] for i in range(n)]
    return [list(tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True)["input_ids"]) for m in msgs]


def test_concurrent_requests_are_batched_and_bounded(server):
    prompts = _prompts(server, 6)
    prompts[0] = prompts[0][3:]  # unequal lengths: exercises left padding

    async def go():
        return await asyncio.gather(
            *[
                server.generate(prompt_ids=p, sampling_params=dict(SAMPLING), request_id=str(i))
                for i, p in enumerate(prompts)
            ]
        )

    outs = asyncio.run(go())
    for out in outs:
        assert 1 <= len(out.token_ids) <= 8
        assert len(out.log_probs) == len(out.token_ids)
        assert all(lp <= 0 for lp in out.log_probs)
        eos = [i for i, t in enumerate(out.token_ids) if t in server.eos_ids]
        assert eos in ([], [len(out.token_ids) - 1])  # generation stops at (and keeps) the first EOS


def test_logprobs_match_a_plain_forward_pass(server):
    """What the trainer recomputes for the same tokens (rollout vs actor gap) must be ~0."""
    prompt = _prompts(server, 1)[0]
    out = asyncio.run(server.generate(prompt_ids=prompt, sampling_params=dict(SAMPLING), request_id="x"))
    ids = torch.tensor([prompt + out.token_ids])
    with torch.no_grad():
        logits = server.model(ids).logits[0, len(prompt) - 1 : -1]
    ref = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(out.token_ids).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(ref, torch.tensor(out.log_probs), atol=1e-4)


def test_greedy_is_deterministic_and_respects_max_tokens(server):
    prompt = _prompts(server, 1)[0]
    params = {"temperature": 0, "top_p": 1.0, "top_k": -1, "logprobs": False, "max_tokens": 3}
    a = asyncio.run(server.generate(prompt_ids=prompt, sampling_params=dict(params), request_id="a"))
    b = asyncio.run(server.generate(prompt_ids=prompt, sampling_params=dict(params), request_id="b"))
    assert a.token_ids == b.token_ids and len(a.token_ids) <= 3 and a.log_probs is None


def test_update_weights_changes_the_model_and_rejects_unknown_names(server):
    state = {k: v.clone() for k, v in server.model.state_dict().items()}
    name = "model.norm.weight"
    new = {name: torch.full_like(state[name], 0.5)}
    assert asyncio.run(server.update_weights(new, global_steps=7)) == 1
    assert torch.equal(server.model.state_dict()[name], new[name]) and server.global_steps == 7
    with pytest.raises(KeyError):
        asyncio.run(server.update_weights({"no.such.weight": torch.zeros(1)}))
    asyncio.run(server.update_weights(state))


def test_adapter_forwards_full_weights_from_the_leader(monkeypatch):
    from gdpo_verl_plugins.cpu import rollout as cpu_rollout

    received = {}

    class FakeServer:
        class update_weights:  # noqa: N801 - mimics a Ray actor method
            @staticmethod
            async def remote(state, steps):
                received.update(state=state, steps=steps)

    monkeypatch.setattr(cpu_rollout.ray, "get_actor", lambda name: FakeServer)
    adapter = object.__new__(cpu_rollout.HFServerAdapter)
    adapter.replica_rank, adapter.is_leader_rank, adapter._server = 0, True, None
    weights = ((f"w{i}", torch.ones(2, dtype=torch.bfloat16)) for i in range(3))
    asyncio.run(adapter.update_weights(weights, global_steps=3, peft_config=None, base_sync_done=True))
    assert sorted(received["state"]) == ["w0", "w1", "w2"] and received["steps"] == 3
    assert received["state"]["w0"].dtype == torch.float32
    with pytest.raises(NotImplementedError):
        asyncio.run(adapter.update_weights(iter(()), wire_format="delta_flush"))
