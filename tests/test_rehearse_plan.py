"""The rehearsal's plan (no verl run): the recipe's own overrides with only the CPU substitutions and the shrunk
sizes changed, a tiny model the layout divides, and a command that passes the checker."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from gdpo_verl.check.compose import dump_script
from gdpo_verl.check.rehearse import merge, tiny_shape

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.verl,
    pytest.mark.skipif(importlib.util.find_spec("verl") is None, reason="composes verl's config"),
]


def test_merge_replaces_same_keys_and_forces_ours() -> None:
    recipe = ["model_engine=megatron", "+a.b=1", "c.d=2", "e=3"]
    assert merge(recipe, ["a.b=5", "f.g=6", "model_engine=megatron"]) == [
        "c.d=2",
        "e=3",
        "++a.b=5",
        "++f.g=6",
        "model_engine=megatron",
    ]


def test_tiny_shape_keeps_grouping_and_divisibility() -> None:
    from gdpo_verl.check.parallel import known_model_shape

    shape = tiny_shape(known_model_shape("DeepSeek-R1-Distill-Qwen-7B"), tp=2, pp=2)  # 28 heads / 4 KV heads
    assert shape["num_key_value_heads"] % 2 == 0 and shape["num_attention_heads"] % shape["num_key_value_heads"] == 0
    assert shape["num_hidden_layers"] % 2 == 0
    assert shape["num_attention_heads"] // shape["num_key_value_heads"] == 4  # 7 groups, capped at 4


def test_plan_of_a_megatron_dapo_recipe(tmp_path: Path) -> None:
    from gdpo_verl.check.cli import check_args
    from gdpo_verl.check.compose import Composer
    from gdpo_verl.check.rehearse import plan

    recipe = dump_script(str(ROOT / "examples" / "math_r1_distill_7b.sh"), [], env={"ACTOR_PP": "2"})
    rehearsal, said = plan(recipe, tmp_path)
    args = dict(a.lstrip("+").split("=", 1) for a in rehearsal.overrides if "=" in a)
    assert args["actor_rollout_ref.rollout.name"] == "hf_cpu" and rehearsal.workers == 4
    assert (
        args["trainer.n_gpus_per_node"] == "4"
        and args["actor_rollout_ref.actor.megatron.tensor_model_parallel_size"] == "2"
    )
    assert args["algorithm.adv_estimator"] == "gdpo" and args["actor_rollout_ref.actor.kl_loss_type"] == "mse"
    assert args["algorithm.filter_groups.enable"] == "False"
    assert said[0].startswith("substitution: actor_rollout_ref.rollout.name=vllm -> hf_cpu")
    assert any(s.startswith("substitution: algorithm.filter_groups.enable=True -> False") for s in said)
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["num_key_value_heads"] % 2 == 0 and config["num_hidden_layers"] % 2 == 0
    found = check_args(rehearsal.overrides, Composer())
    assert [f.message for f in found if f.level == "error"] == []


def test_plan_composes_with_the_checkers_composer(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from gdpo_verl.check.rehearse import plan

    seen: list[list[str]] = []

    class NotComposing:  # stands for the checker's composer (its --config-dir): plan must use it, not a new one
        def compose(self, args):
            seen.append(list(args))
            return SimpleNamespace(cfg=None)

    with pytest.raises(RuntimeError, match="the recipe's command does not compose"):
        plan(["trainer.total_epochs=1"], tmp_path, NotComposing())
    assert seen == [["trainer.total_epochs=1"]]
