"""What the quickstart prints while verl runs: phases with elapsed time, one line per step, the progress bar, and
verl's error as plain text. The verl lines are copied from a real quickstart's verl.log (colour codes included)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from gdpo_verl.quickstart import command, console, display

E = "\x1b"
# In the order a real V1 run printed them (the quickstart's own verl.log, with Ray's colour codes).
REAL_START = [
    "2026-12-05 14:43:25,495\tINFO worker.py:2029 -- Started a local Ray instance. View the dashboard at "
    f"{E}[1m{E}[32mhttp://127.0.0.1:8265 {E}[39m{E}[22m",
    f"{E}[36m(TaskRunnerV1 pid=16665){E}[0m INFO:2026-12-05 14:43:40,342:create worker group "
    "dict_keys(['actor_rollout'])",
    f"{E}[36m(WorkerDict pid=17064){E}[0m INFO:2026-12-05 14:43:46,806:Platform override from VERL_PLATFORM: cpu",
    f"{E}[36m(WorkerDict pid=17064){E}[0m Qwen2ForCausalLM contains 80.45K parameters",
    f"{E}[36m(TaskRunnerV1 pid=16665){E}[0m INFO:2026-12-05 14:43:57,985:all initialize finished, ready to fit",
    "Training Progress:   0%|          | 0/3 [00:00<?, ?it/s]",
    f"{E}[36m(AgentLoopWorkerTQ pid=17869){E}[0m WARNING:2026-12-05 14:44:09,133:target_num_threads 8 should not "
    "exceed total physical CPU cores 2. Setting to 2.",
]


def _rollouts(folder: Path) -> None:
    folder.mkdir(parents=True)
    rows = [{"input": "p", "output": o, "gts": "7", "score": 0.0, "step": 1} for o in ("x", "7")]
    (folder / "1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_phases_steps_and_validation_lines(tmp_path):
    _rollouts(tmp_path / "rollouts")
    out = io.StringIO()
    progress = display.Progress(command.RunConfig(out=tmp_path, steps=2), out=out)
    assert progress.reached() == "while verl was starting (Ray not up yet)"
    for line in REAL_START:
        progress(line)
    assert progress.reached() == "before the first step (reached: training loop started, generating the first rollouts)"
    progress("(TaskRunnerV1 pid=1) step:0 - val-aux/x/y/format/mean@1:np.float64(0.5) - val-aux/x/y/score/mean@1:1.0")
    progress("(TaskRunnerV1 pid=1) step:1 - critic/score/mean:0.25 - timing_s/step:1.5")
    progress.close()
    lines = out.getvalue().splitlines()
    phases = [line.split("] ", 1)[1] for line in lines if line.startswith("  [")]
    assert phases == [
        "Ray up",
        "workers started",
        "model loaded",
        "training loop started, generating the first rollouts",
        "first step done",
    ]
    assert all(line.split("]")[0].strip(" [").removesuffix(" s").isdigit() for line in lines if line.startswith("  ["))
    assert lines[4].split()[:2] == ["val@0", "0.500"]
    assert lines[-1].split() == ["1/2", "0.167", "0.500", "0.250", "1.5"]  # format of "x","7": (0 + 1/3) / 2
    assert len(lines) == 8  # the warning line is not shown
    assert progress.reached() == "after step 1 of 2"


def test_the_progress_bar_counts_steps(tmp_path):
    bar, out = io.StringIO(), io.StringIO()
    progress = display.Progress(command.RunConfig(out=tmp_path, steps=40), out=out, bar_file=bar)
    for step in (1, 2, 3):
        progress(f"(TaskRunnerV1 pid=1) step:{step} - critic/score/mean:0.25 - timing_s/step:1.5")
    assert progress.bar.n == 3 and "3/40" in bar.getvalue()
    progress.close()
    assert [line.split()[0] for line in out.getvalue().splitlines() if "/40" in line] == ["1/40", "2/40", "3/40"]


def test_verl_error_is_plain_and_without_hydras_override_echo():
    """Shaped as a real failure (`-- data.train_files=/nope.parquet`): Ray's error, its traceback, Hydra's echo."""
    log = [
        f"{E}[36m(TaskRunnerV1 pid=16665){E}[0m Using dataset class: RLHFDataset",
        "Error executing job with overrides: ['algorithm.adv_estimator=gdpo', 'data.train_files=/nope.parquet']",
        "Traceback (most recent call last):",
        '  File "/x/verl/trainer/main_ppo.py", line 42, in main',
        "    run_ppo(config)",
        "ray.exceptions.RayTaskError(FileNotFoundError): ray::TaskRunnerV1.run() (pid=12909, ip=192.0.2.2)",
        '  File "/x/verl/utils/dataset/rl_dataset.py", line 174, in _read_files_and_tokenize',
        '    dataframe = datasets.load_dataset("parquet", data_files=parquet_file)["train"]',
        "                ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        '  File "/x/datasets/data_files.py", line 405, in resolve_pattern',
        "    raise FileNotFoundError(error_msg)",
        "FileNotFoundError: Unable to find '/nope.parquet'",
        "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.",
    ]
    assert console.verl_error(log) == [
        '  File "/x/verl/utils/dataset/rl_dataset.py", line 174, in _read_files_and_tokenize',
        '    dataframe = datasets.load_dataset("parquet", data_files=parquet_file)["train"]',
        '  File "/x/datasets/data_files.py", line 405, in resolve_pattern',
        "    raise FileNotFoundError(error_msg)",
        "FileNotFoundError: Unable to find '/nope.parquet'",
    ]
    assert console.verl_error(["all fine", "done"]) == []
    assert not console.is_exception_line(log[1])  # Hydra's echo is not shown while the run goes on


def test_a_multiline_message_is_kept_whole():
    log = [
        "Traceback (most recent call last):",
        '  File "/x/omegaconf/base.py", line 9, in _format_and_raise',
        "    raise ex",
        "omegaconf.errors.ConfigAttributeError: Key 'gdpo_x' is not in struct",
        "    full_key: algorithm.gdpo_x",
        "    object_type=dict",
    ]
    assert console.verl_error(log) == log[1:]
