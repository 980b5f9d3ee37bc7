"""gdpo_multi inside verl 0.9.x: registry contract, Hydra composition, run_single on verl's data layout."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.verl, pytest.mark.timeout(300)]
verl = pytest.importorskip("verl")

OVERRIDES = [
    "reward.reward_manager.name=gdpo_multi",
    "+reward.gdpo_multi.suite=math",
    "+reward.gdpo_multi.rewards=[{name:correct,fn:math.correct},{name:length,fn:math.length,"
    "kwargs:{max_tokens:5},weight:1.0,condition:{on:correct,threshold:1.0}}]",
    "+reward.gdpo_multi.timeout_s=10",
    "+reward.gdpo_multi.max_workers=1",
    "reward.num_workers=1",
]


def test_registry_api_is_what_the_plugin_uses():
    """Fails if verl moves or changes the reward-manager registry or the manager API the adapter relies on."""
    from verl.experimental.reward_loop.reward_manager import base, registry
    from verl.trainer.ppo import reward as ppo_reward

    assert callable(registry.register) and callable(registry.get_reward_manager_cls)
    assert isinstance(registry.REWARD_MANAGER, dict)
    assert list(inspect.signature(base.RewardManagerBase.__init__).parameters) == [
        "self",
        "config",
        "tokenizer",
        "compute_score",
    ]
    assert "run_single" in base.RewardManagerBase.__abstractmethods__
    assert inspect.iscoroutinefunction(registry.REWARD_MANAGER["naive"].run_single)
    src = inspect.getsource(ppo_reward.load_reward_manager)
    assert "config=config" in src and "tokenizer=tokenizer" in src  # the whole config reaches the manager
    from gdpo_verl_plugins import reward_manager as plugin
    from gdpo_verl_plugins import verl_shapes

    assert verl_shapes.REWARD_MANAGER.missing(importlib.import_module(verl_shapes.REWARD_MANAGER.module)) == []
    assert registry.get_reward_manager_cls(plugin.NAME) is plugin._registered[plugin.NAME]


def _compose(extra=(), base=OVERRIDES):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()  # `gdpo-verl check` keeps its own Hydra initialized between calls
    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(config_name="ppo_trainer", overrides=[*base, *extra])


class CharTokenizer:
    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(int(i)) for i in ids)


def _sample(text: str, ground_truth: str, pad: int = 3):
    import torch
    from verl import DataProto

    prompt = torch.tensor([[ord("q")] * 4])
    resp = torch.tensor([[ord(ch) for ch in text] + [0] * pad])
    mask = torch.cat([torch.ones(1, 4 + len(text)), torch.zeros(1, pad)], dim=1).long()
    return DataProto.from_dict(
        tensors={"prompts": prompt, "responses": resp, "attention_mask": mask},
        non_tensors={
            "data_source": np.array(["math"], dtype=object),
            "reward_model": np.array([{"ground_truth": ground_truth}], dtype=object),
            "extra_info": np.array([{"index": 0}], dtype=object),
        },
    )


def test_compose_construct_and_score():
    from verl.trainer.ppo.reward import load_reward_manager

    cfg = _compose(["+algorithm.gdpo_reward_keys=[correct,length]"])
    manager = load_reward_manager(cfg, CharTokenizer())
    try:

        async def run():
            return [await manager.run_single(_sample(t, "7")) for t in ("\\boxed{7}", "\\boxed{8}", "so \\boxed{7}")]

        outs = asyncio.run(run())
        infos = [o["reward_extra_info"] for o in outs]
        assert [i["correct"] for i in infos] == [1.0, 0.0, 1.0]
        assert [i["length"] for i in infos] == [0.0, 0.0, 0.0]  # > 5 tokens (counted from the attention mask)
        short = asyncio.run(manager.run_single(_sample("7", "7")))["reward_extra_info"]
        assert (short["correct"], short["length"], short["gdpo_reward_failures"]) == (1.0, 1.0, 0.0)
        assert [o["reward_score"] for o in outs] == [1.0, 0.0, 1.0]
        keys = set(infos[0])
        assert all(set(i) == keys for i in infos)
        assert {"correct", "length", "score", "gdpo_signature", "gdpo_reward_failures"} == keys
        assert infos[0]["gdpo_signature"] != infos[1]["gdpo_signature"]
        assert not any(math.isnan(i["score"]) for i in infos)
    finally:
        manager.scorer.close()


def test_mismatched_gdpo_reward_keys_fail_at_start_up():
    from verl.trainer.ppo.reward import load_reward_manager

    from gdpo_verl.rewards.manager import RewardConfigError

    cfg = _compose(["+algorithm.gdpo_reward_keys=[correct,format]"])
    with pytest.raises(RewardConfigError, match=r"\['correct', 'format'\].*\['correct', 'length'\]"):
        load_reward_manager(cfg, CharTokenizer())


def test_user_reward_file_in_hydra_override(tmp_path):
    from verl.trainer.ppo.reward import load_reward_manager

    f = tmp_path / "mine.py"
    f.write_text("def shout(solution_str, **_):\n    return float(solution_str.isupper())\n")
    rewards = f"+reward.gdpo_multi.rewards=[{{name:shout,fn:'{f}:shout'}}]"
    cfg = _compose(base=["reward.reward_manager.name=gdpo_multi", rewards, "+reward.gdpo_multi.max_workers=1"])
    manager = load_reward_manager(cfg, CharTokenizer())
    try:
        out = asyncio.run(manager.run_single(_sample("HELLO", "")))
        assert out["reward_extra_info"]["shout"] == 1.0
    finally:
        manager.scorer.close()


def _echo_manager(tmp_path, extra=()):
    from verl.trainer.ppo.reward import load_reward_manager

    f = tmp_path / "echo.py"
    f.write_text(
        "def tokens(num_tokens, **_):\n    return float(num_tokens)\n\n"
        "def exact(solution_str, **_):\n    return float(solution_str == 'abc')\n\n"
        "compute_score = exact\n"
    )
    rewards = f"+reward.gdpo_multi.rewards=[{{name:tokens,fn:'{f}:tokens'}},{{name:exact,fn:'{f}:exact'}}]"
    base = ["reward.reward_manager.name=gdpo_multi", rewards, "+reward.gdpo_multi.max_workers=0"]
    cfg = _compose([o.format(echo=f) for o in extra], base)
    return load_reward_manager(cfg, CharTokenizer())


def _rows(prompts, responses, masks, non_tensors=None):
    import torch
    from verl import DataProto

    return DataProto.from_dict(
        tensors={
            "prompts": torch.tensor(prompts),
            "responses": torch.tensor(responses),
            "attention_mask": torch.tensor(masks),
        },
        non_tensors={
            "data_source": np.array(["x"] * len(prompts), dtype=object),
            "reward_model": np.array([{"ground_truth": ""}] * len(prompts), dtype=object),
            **(non_tensors or {}),
        },
    )


def test_response_tokens_exclude_padding_wherever_it_sits(tmp_path):
    a, b, c, q = (ord(ch) for ch in "abcq")
    manager = _echo_manager(tmp_path)
    try:
        # padding inside the response part, on the left and in the middle (prompt of width 2)
        left = _rows([[q, q]], [[0, 0, a, b, c]], [[1, 1, 0, 0, 1, 1, 1]])
        middle = _rows([[q, q]], [[a, 0, b, c, 0]], [[1, 1, 1, 0, 1, 1, 0]])
        # a multi-output agent-loop session as verl scores it: each row padded on its own, the final output has a
        # shorter prompt than the first, and verl carries each output's prompt/response lengths
        session = _rows(
            [[q, q, q, q, q, q], [q, q, 0, 0, 0, 0]],
            [[a, b, 0], [a, b, c]],
            [[1] * 8, [1] * 5 + [0] * 3],
            {"prompt_len": np.array([6, 2]), "response_len": np.array([2, 3])},
        )
        for data in (left, middle, session):
            info = asyncio.run(manager.run_single(data))["reward_extra_info"]
            assert (info["tokens"], info["exact"]) == (3.0, 1.0)
    finally:
        manager.scorer.close()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("reward.reward_model.enable=True", r"does not support a reward model.*reward\.reward_model\.enable=False"),
        ("reward.custom_reward_function.path={echo}", r"list the function in reward\.gdpo_multi\.rewards"),
    ],
)
def test_settings_gdpo_multi_cannot_honour_stop_at_start(tmp_path, override, message):
    from gdpo_verl.rewards.manager import RewardConfigError

    with pytest.raises(RewardConfigError, match=message):
        _echo_manager(tmp_path, [override])


def test_reward_model_with_gdpo_multi_stops_when_verl_builds_its_reward_loop(tmp_path):
    """Driver side, before verl starts the reward model's servers or any rollout."""
    from verl.experimental.reward_loop import RewardLoopManager

    from gdpo_verl.rewards.manager import RewardConfigError

    cfg = _compose(["reward.reward_model.enable=True"])
    with pytest.raises(RewardConfigError, match="does not support a reward model"):
        RewardLoopManager(config=cfg, rm_resource_pool=None)
