"""`gdpo-verl check` reasons about what a run will do: a held-out-style set of realistic mistakes on the shipped
recipes (each must be caught with a message naming the setting, the consequence and the fix), and the arithmetic of
the run plan and the memory estimate against independently computed values."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from gdpo_verl.check.compose import Composer, dump_script
from gdpo_verl.check.parallel import ModelShape, known_model_shape

ROOT = Path(__file__).resolve().parents[1]
needs_verl = pytest.mark.skipif(
    importlib.util.find_spec("verl") is None or importlib.util.find_spec("hydra") is None, reason="needs verl"
)
pytestmark = [pytest.mark.verl, needs_verl]


@pytest.fixture(scope="module")
def composer() -> Composer:
    return Composer()


@pytest.fixture(scope="module")
def parquet(tmp_path_factory: pytest.TempPathFactory):
    """parquet(rows) -> the path of a training file with that many rows (only the row count is read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("data")

    def make(rows: int) -> str:
        path = folder / f"train_{rows}.parquet"
        if not path.exists():
            pq.write_table(pa.table({"prompt": [f"q{i}" for i in range(rows)]}), path)
        return str(path)

    return make


def _check(composer: Composer, script: str, *args: str, **env: str):
    from gdpo_verl.check.cli import check_args

    return check_args(dump_script(str(ROOT / "examples" / script), list(args), env={"TE": "0", **env}), composer)


MATH7 = "math_r1_distill_7b.sh"  # Megatron TP2, DAPO, 1024 + 8000 tokens, KL loss, length <= 4000 tokens, 500 steps
GSM = "gsm8k_qwen2_5_1_5b.sh"  # 1 epoch, batch 128, KL loss, three binary rewards
TOOL = "tool_qwen2_5_1_5b.sh"  # KL in the reward, 15 epochs
# (mistake, script, script arguments, environment, topic, level, words the message must contain)
HELD_OUT: list[tuple[str, str, list[str], dict[str, str], str, str, tuple[str, ...]]] = [
    (
        "rollout response_length below the data's",
        MATH7,
        ["actor_rollout_ref.rollout.response_length=4096"],
        {},
        "truncation",
        "warn",
        ("response_length=4096", "cuts responses", "data.max_response_length"),
    ),
    (
        "rollout prompt_length below the data's",
        GSM,
        ["actor_rollout_ref.rollout.prompt_length=256"],
        {},
        "truncation",
        "warn",
        ("prompt_length=256", "cuts prompts"),
    ),
    (
        "length limit >= the longest response",
        MATH7,
        [],
        {"MAX_RESPONSE": "4000"},
        "reward",
        "warn",
        ("'length'", "max_tokens=4000", "advantage always 0", "Lower max_tokens"),
    ),
    (
        "conditioned length limit >= the longest response",
        "math_r1_distill_7b_conditioned.sh",
        [],
        {"MAX_RESPONSE": "3000"},
        "reward",
        "warn",
        ("copy of 'correct'",),
    ),
    (
        "greedy decoding with n > 1",
        MATH7,
        ["actor_rollout_ref.rollout.do_sample=False"],
        {},
        "sampling",
        "error",
        ("do_sample=False", "advantage is 0", "temperature"),
    ),
    (
        "temperature 0 with n > 1",
        GSM,
        ["actor_rollout_ref.rollout.temperature=0"],
        {},
        "sampling",
        "error",
        ("temperature=0", "updates nothing"),
    ),
    (
        "no checkpoint on a 500-step run",
        MATH7,
        ["trainer.save_freq=-1"],
        {},
        "save",
        "warn",
        ("save_freq=-1", "500-step", "never writes a checkpoint", "trainer.save_freq"),
    ),
    (
        "KL in the loss and in the reward",
        MATH7,
        ["algorithm.use_kl_in_reward=True"],
        {},
        "kl",
        "warn",
        ("applied twice", "use_kl_loss=True", "use_kl_in_reward=True"),
    ),
    (
        "KL twice, from the other side",
        TOOL,
        ["actor_rollout_ref.actor.use_kl_loss=True"],
        {},
        "kl",
        "warn",
        ("applied twice",),
    ),
    (
        "std normalization off under GDPO",
        MATH7,
        ["algorithm.norm_adv_by_std_in_grpo=False"],
        {},
        "gdpo",
        "warn",
        ("norm_adv_by_std_in_grpo=False", "w/o std", "Remove it"),
    ),
    (
        "GDPO weights differ from the manager's score weights",
        MATH7,
        ["++reward.gdpo_multi.rewards=[{name:correct,weight:2.0},{name:length}]"],
        {},
        "weights",
        "warn",
        ("correct: 1 vs 2", "GRPO arm"),
    ),
    (
        "data-parallel size that pads the V1 batch",
        MATH7,
        [],
        {"GPUS_PER_NODE": "6"},
        "padding",
        "warn",
        ("synthetic rows", "data-parallel size 3"),
    ),
    (
        "more steps than the epochs allow",
        GSM,
        ["trainer.total_training_steps=100"],
        {"TRAIN_FILES": "@1000"},
        "steps",
        "warn",
        ("verl stops at step 7", "trainer.total_epochs=15"),
    ),
    (
        "fewer rows than one batch",
        GSM,
        [],
        {"TRAIN_FILES": "@100"},
        "steps",
        "error",
        ("100 rows", "zero steps per epoch"),
    ),
    (
        "DAPO steps that the epochs cannot feed",
        MATH7,
        ["trainer.total_epochs=10"],
        {"TRAIN_FILES": "@40000"},
        "steps",
        "warn",
        ("1/keep-rate", "trainer.total_epochs"),
    ),
    (
        "vLLM share that leaves no room for the actor",
        MATH7,
        [],
        {"ROLLOUT_MEM": "0.8"},
        "memory",
        "warn",
        ("gpu_memory_utilization 0.8", "x 80 GiB", "runs out of memory", "at most 0.50"),
    ),
    (
        "local layers with packed sequences",
        MATH7,
        ["actor_rollout_ref.actor.megatron.use_remove_padding=True"],
        {},
        "backend",
        "error",
        ("transformer_impl=local", "first forward"),
    ),
]


def test_shipped_recipes_are_clean(composer: Composer) -> None:
    for script in (MATH7, GSM, TOOL):
        found = _check(composer, script)
        assert [f for f in found if f.level != "info" and f.topic != "install"] == [], script


@pytest.mark.parametrize("case", HELD_OUT, ids=[c[0] for c in HELD_OUT])
def test_held_out_mistake_is_caught(case, composer: Composer, parquet) -> None:
    _, script, args, env, topic, level, words = case
    env = {k: parquet(int(v[1:])) if v.startswith("@") else v for k, v in env.items()}
    found = _check(composer, script, *args, **env)
    hits = [f.message for f in found if f.topic == topic and f.level == level]
    assert hits, [(f.level, f.topic, f.message[:100]) for f in found if f.level != "info"]
    assert any(all(w in m for w in words) for m in hits), hits


def test_parameter_count_matches_published_sizes() -> None:
    # Parameter counts as published on each model card (billions).
    published = {
        "Qwen2.5-0.5B-Instruct": 0.49,
        "Qwen2.5-1.5B-Instruct": 1.54,
        "Qwen2.5-3B-Instruct": 3.09,
        "DeepSeek-R1-Distill-Qwen-7B": 7.62,
        "Qwen3-4B-Instruct-2507": 4.02,
    }
    for name, billions in published.items():
        params = known_model_shape(name).parameters()
        assert abs(params / 1e9 - billions) / billions < 0.01, (name, params)


def test_memory_arithmetic_by_hand(composer: Composer) -> None:
    """Megatron TP2 on 8 GPUs, 7.6B: weights 2 B / 2, grads 4 B / 2, Adam+master 12 B / 8 (distributed optimizer)."""
    from gdpo_verl.check.memory import GIB, check_memory

    cfg = composer.compose(dump_script(str(ROOT / "examples" / MATH7), [], env={"TE": "0"})).cfg
    shape = ModelShape(28, 4, 28, "test", 3584, 18944, 152064, False)
    p = shape.parameters()
    by_hand = (p * 2 / 2 + p * 4 / 2 + p * 12 / 8) / GIB + 0.5 * 80  # reference offloaded; rollout 0.5 x 80 GiB
    (finding,) = check_memory(cfg, shape, 80.0)
    assert finding.level == "info" and f"total {by_hand:.1f} GiB per GPU" in finding.message
    (small,) = check_memory(cfg, shape, 40.0)  # the same layout on a 40 GiB GPU
    assert small.level == "warn" and "--gpu-memory-gib" in small.message


def test_validate_command_is_the_stable_entry_point() -> None:
    from gdpo_verl.check import errors, validate_command

    found = validate_command(["actor_rollout_ref.rollout.name=vllm", "algorithm.adv_estimator=gdpo_vectorised"])
    assert [f.topic for f in errors(found)][:1] == ["estimator"]
    assert "did you mean" in errors(found)[0].message
