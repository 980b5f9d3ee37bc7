"""A minimal filesystem view: the sandbox's root holds Python's standard library, the shared-library directories,
``ld.so.cache``, a few devices, ``/proc`` and the case's own ``/tmp`` and ``/dev/shm``; nothing of ``$HOME``, caches,
the project or any data. The attack walks the whole tree looking for its own expected output, which the test plants
where datasets leave copies of their ground truth (a ``datasets`` Arrow cache under ``~/.cache``, the project
checkout, the host's /tmp). Bounded: the walk reads at most a fixed number of bytes, pytest-timeout per test."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
from code_group import FOUND, GT, HONEST, SCAN, TOKEN, check_group, score_group

from gdpo_verl.rewards.sandbox import describe, isolation_mode, run_cases, run_python
from gdpo_verl.rewards.sandbox.launcher import PACKAGES_DIR

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(isolation_mode() != "namespaces", reason="needs root + unshare"),
]
REPO = Path(__file__).resolve().parents[2]
SEARCH = (  # where training data usually is first (caches, checkouts, data mounts), data-like files only
    SCAN
    + """
import os
budget = 64 << 20
def search(root):
    global budget
    for top, dirs, files in os.walk(root):
        if top.startswith(('/proc', '/sys', '/usr')):
            dirs[:] = []
            continue
        for name in files:
            if not name.endswith(('.arrow', '.parquet', '.json', '.jsonl', '.csv', '.txt')):
                continue
            p = os.path.join(top, name)
            try:
                if os.path.islink(p) or os.path.getsize(p) > (2 << 20) or budget <= 0:
                    continue
                with open(p, 'rb') as f:
                    data = f.read()
                budget -= len(data)
                look(data)
            except OSError:
                pass
            if FOUND:
                return
for root in ('/root/.cache', '/home', '/work', '/data', '/mnt', '/srv', '/opt', '/tmp', '/root', '/'):
    if not FOUND:
        search(root)
"""
    + FOUND
)
LIST_TREE = """
import os, json
paths = []
for top, dirs, files in os.walk('/'):
    if top.startswith('/proc'):
        dirs[:] = []
        continue
    paths.append(top)
    paths.extend(os.path.join(top, d) for d in dirs if os.path.islink(os.path.join(top, d)))
    paths.extend(os.path.join(top, f) for f in files)
print(json.dumps(paths))
"""


@pytest.fixture
def planted():
    """The expected outputs, where a training run's data would be: HF datasets' Arrow cache, the project, /tmp."""
    tag = uuid.uuid4().hex[:8]
    text = json.dumps({"reward_model": {"ground_truth": GT}})
    places = [
        Path.home() / ".cache" / "huggingface" / "datasets" / f"gdpo_plant_{tag}" / "train.arrow",
        REPO / f".gdpo_plant_{tag}.parquet",
        Path("/tmp") / f"gdpo_plant_{tag}" / "data.json",
        Path(os.__file__).resolve().parents[1] / f"gdpo_plant_{tag}.json",  # beside the stdlib: must not be bound
    ]
    made = []
    for p in places:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
            made.append(p)
        except OSError:
            pass
    yield made
    for p in made:
        p.unlink(missing_ok=True)
        if p.parent.name.startswith("gdpo_plant_"):
            shutil.rmtree(p.parent, ignore_errors=True)


def test_no_program_finds_the_data_on_the_filesystem(planted):
    assert planted
    bodies = [HONEST, SEARCH, HONEST, SEARCH, HONEST]
    check_group(bodies, {0, 2, 4}, score_group(bodies))


def test_the_root_holds_only_what_python_needs():
    res = run_python(LIST_TREE)
    assert res.ok, res.stderr
    paths = json.loads(res.stdout)
    allowed = [*describe()["root"], "/dev", "/tmp", "/etc/ld.so.cache"]
    links = {"/" + n for n in os.listdir("/") if os.path.islink("/" + n)}  # merged-/usr links (/lib -> usr/lib)
    ancestors = {str(Path(a).parents[i]) for a in allowed for i in range(len(Path(a).parents))}
    stray = [
        p
        for p in paths
        if p not in links | ancestors and not any(p == a or p.startswith(a.rstrip("/") + "/") for a in allowed)
    ]
    assert stray == [], stray[:20]
    assert not any(p.startswith((str(REPO), str(Path.home() / ".cache"))) for p in paths)
    assert not any("site-packages" in p or "dist-packages" in p for p in paths if not p.endswith("-packages"))
    assert TOKEN not in res.stdout


def test_named_packages_and_only_those_are_importable():
    import importlib.util

    if importlib.util.find_spec("numpy") is None:
        pytest.skip("numpy is not installed")
    use = "import numpy\nprint(int(numpy.arange(4).sum()))"
    (without,) = run_cases(use, "script", [{"stdin": ""}])
    assert "ModuleNotFoundError" in without.stderr, without.stdout + without.stderr
    (ok,) = run_cases(use, "script", [{"stdin": ""}], packages=("numpy",))
    assert ok.stdout == "6\n", ok.stderr
    site = os.path.dirname(os.path.dirname(importlib.util.find_spec("numpy").origin))
    show = (
        f"import os, json\nprint(json.dumps([os.path.exists({site!r}), sorted(os.listdir({PACKAGES_DIR!r}))]))"
    )
    (listing,) = run_cases(show, "script", [{"stdin": ""}], packages=("numpy",))
    site_visible, bound = json.loads(listing.stdout)
    # the named package (and its vendored libraries) under PACKAGES_DIR, nothing else of the host's site-packages
    assert not site_visible and set(bound) <= {"numpy", "numpy.libs"} and "numpy" in bound, listing.stdout
