"""SandboxFusion backend: each test case is one ``POST {url}/run_code`` (SandboxFusion's documented API).

The service runs what :mod:`.runner` would run locally: the program plus this case's input, never an expected
output. stdout and stderr come back in ``run_result``; the value record is written to ``record.json`` in the
service's work directory and fetched with ``fetch_files``. The verdict is made by the caller, exactly as for the
local sandbox. ``concurrency`` bounds the requests in flight from this process.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import CaseResult, Limits, SandboxUnavailable

RUNNER_SOURCE = Path(__file__).with_name("runner.py").read_text()
RECORD_FILE = "record.json"
_PROLOGUE = """
_record_fd = os.open({record!r}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
if _record_fd != RECORD_FD:
    os.dup2(_record_fd, RECORD_FD)
    os.close(_record_fd)
run_case(json.loads({code!r}), {mode!r}, json.loads({case!r}), {fn_name!r})
"""


def program(code: str, mode: str, case: dict, fn_name: str | None) -> str:
    """A self-contained script: the runner, then one case (inputs only)."""
    return RUNNER_SOURCE + _PROLOGUE.format(
        record=RECORD_FILE, code=json.dumps(code), mode=mode, case=json.dumps(case), fn_name=fn_name
    )


class FusionClient:
    _clients: dict[tuple, FusionClient] = {}
    _lock = threading.Lock()

    def __init__(self, url: str, concurrency: int, request_timeout_s: float) -> None:
        if concurrency < 1:
            raise ValueError(f"sandbox_fusion concurrency must be >= 1, got {concurrency}")
        self.url = url.rstrip("/") + "/run_code"
        self.timeout = float(request_timeout_s)
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sandbox-fusion")

    @classmethod
    def get(cls, url: str, concurrency: int, request_timeout_s: float) -> FusionClient:
        key = (url, concurrency, request_timeout_s)
        with cls._lock:
            if key not in cls._clients:
                cls._clients[key] = cls(url, concurrency, request_timeout_s)
            return cls._clients[key]

    def _post(self, payload: dict) -> dict:
        req = urllib.request.Request(
            self.url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - the configured URL
                return json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise SandboxUnavailable(f"sandbox_fusion at {self.url}: {type(e).__name__}: {e}") from None

    def run_one(self, code: str, mode: str, case: dict, limits: Limits, fn_name: str | None) -> CaseResult:
        payload = {
            "code": program(code, mode, case, fn_name),
            "language": "python",
            "stdin": case.get("stdin", ""),
            "compile_timeout": limits.wall_s,
            "run_timeout": limits.wall_s,
            "memory_limit_MB": limits.memory_mb,
            "files": {},
            "fetch_files": [RECORD_FILE],
        }
        resp = self._post(payload)
        if not isinstance(resp, dict) or resp.get("status") not in ("Success", "Failed"):
            msg = resp.get("message") if isinstance(resp, dict) else resp
            raise SandboxUnavailable(f"sandbox_fusion could not run the code: {msg!r}")
        run = resp.get("run_result") or {}
        record = (resp.get("files") or {}).get(RECORD_FILE)
        if record is not None:
            try:
                record = base64.b64decode(record).decode("utf-8", "replace")
            except ValueError:
                record = None
        stdout, stderr = str(run.get("stdout") or ""), str(run.get("stderr") or "")
        return CaseResult(
            exit=run.get("return_code"),
            signal=None,
            timed_out=run.get("status") == "TimeLimitExceeded",
            output_truncated=len(stdout) + len(stderr) > limits.output_bytes,
            stdout=stdout[: limits.output_bytes],
            stderr=stderr[-4096:],
            record=record,
            wall_s=float(run.get("execution_time") or 0.0),
        )

    def run_cases(
        self, code: str, mode: str, cases: list[dict], limits: Limits, fn_name: str | None
    ) -> list[CaseResult]:
        futures = [self.pool.submit(self.run_one, code, mode, c, limits, fn_name) for c in cases]
        return [f.result() for f in futures]
