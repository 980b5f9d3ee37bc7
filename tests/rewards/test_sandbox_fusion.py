"""The code suite's SandboxFusion backend against a local service on 127.0.0.1 that follows SandboxFusion's
documented ``POST /run_code`` API (request: code, language, stdin, compile_timeout, run_timeout, files, fetch_files;
response: status, message, compile_result, run_result{status, return_code, stdout, stderr, execution_time}, files).
The verdict must be the same as with the local sandbox, and the service must never see an expected output."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_sandbox_forgery import ALL_GTS, FORGERIES, HONEST, TOKEN, respond

from gdpo_verl.rewards import code_rewards as c
from gdpo_verl.rewards.sandbox import SandboxUnavailable, isolation_mode

pytestmark = pytest.mark.timeout(240)


class Service:
    """A minimal SandboxFusion-compatible service: runs `python main.py` in a temporary directory."""

    def __init__(self, delay_s: float = 0.0, answer: dict | None = None) -> None:
        self.payloads: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with service.lock:
                    service.payloads.append(body)
                    service.in_flight += 1
                    service.max_in_flight = max(service.max_in_flight, service.in_flight)
                try:
                    time.sleep(delay_s)
                    out = answer if answer is not None else service.run(body)
                finally:
                    with service.lock:
                        service.in_flight -= 1
                data = json.dumps(out).encode()
                self.send_response(200 if self.path == "/run_code" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def run(body: dict) -> dict:
        assert body["language"] == "python" and isinstance(body["code"], str)
        with tempfile.TemporaryDirectory() as d:
            for name, content in (body.get("files") or {}).items():
                Path(d, name).write_bytes(base64.b64decode(content))
            Path(d, "main.py").write_text(body["code"])
            start = time.monotonic()
            try:
                p = subprocess.run(
                    [sys.executable, "-I", "main.py"],
                    cwd=d,
                    input=(body.get("stdin") or "").encode(),
                    capture_output=True,
                    timeout=float(body["run_timeout"]),
                )
                out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
                run = {"status": "Finished", "return_code": p.returncode, "stdout": out, "stderr": err}
            except subprocess.TimeoutExpired:
                run = {"status": "TimeLimitExceeded", "return_code": None, "stdout": "", "stderr": ""}
            run["execution_time"] = time.monotonic() - start
            files = {
                f: base64.b64encode(Path(d, f).read_bytes()).decode()
                for f in body.get("fetch_files") or []
                if Path(d, f).is_file()
            }
        ok = run["status"] == "Finished" and run["return_code"] == 0
        return {"status": "Success" if ok else "Failed", "message": "", "compile_result": None,
                "run_result": run, "executor_pod_name": None, "files": files}  # fmt: skip

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def service():
    s = Service()
    yield s
    s.close()


def fusion_kwargs(url: str, concurrency: int = 4) -> dict:
    return {"backend": "sandbox_fusion", "sandbox_fusion_url": url, "concurrency": concurrency, "per_test_s": 3}


@pytest.mark.parametrize("kind", sorted(ALL_GTS))
def test_honest_code_passes_and_expected_outputs_never_reach_the_service(service, kind):
    assert c.pass_rate(respond(HONEST[kind]), ALL_GTS[kind], **fusion_kwargs(service.url)) == 1.0
    sent = json.dumps(service.payloads)
    assert service.payloads and f"{TOKEN}3" not in sent and f"{TOKEN}10" not in sent  # the expected outputs
    assert {tuple(sorted(p)) for p in service.payloads} == {
        ("code", "compile_timeout", "fetch_files", "files", "language", "memory_limit_MB", "run_timeout", "stdin")
    }


SAFE_ON_A_PLAIN_SERVICE = [  # the test service is a bare subprocess: leave out what would signal its parent
    "always_equal_object", "fake_record_then_exit", "fake_records_everywhere", "gc_get_objects",
    "os_exit_zero_first", "patched_exit_functions", "walk_stack_frames",
]  # fmt: skip
PROGRAMS = {
    **{n: FORGERIES[n] for n in SAFE_ON_A_PLAIN_SERVICE},
    "honest": None,
    "crash": "def solve(a, b):\n    raise ValueError('x')\nif __name__ == '__main__':\n    raise ValueError('x')",
    "syntax_error": "def solve(a, b:\n    return 1",
}


@pytest.mark.skipif(isolation_mode() != "namespaces", reason="compares with the full local sandbox")
@pytest.mark.parametrize("kind", sorted(ALL_GTS))
def test_verdict_is_identical_for_both_backends(service, kind):
    for name, body in PROGRAMS.items():
        body = HONEST[kind] if body is None else body
        local = c.run_tests(respond(body), ALL_GTS[kind], per_test_s=3)
        remote = c.run_tests(respond(body), ALL_GTS[kind], **fusion_kwargs(service.url))
        assert local == remote, (name, local, remote)
        if name != "honest":
            assert remote.pass_rate == 0.0, name


def test_concurrency_is_bounded():
    s = Service(delay_s=0.3)
    try:
        gt = {"inputs": [f"{i} 1\n" for i in range(6)], "outputs": [f"{i + 1}\n" for i in range(6)]}
        body = "a, b = map(int, input().split())\nprint(a + b)"
        assert c.pass_rate(respond(body), gt, **fusion_kwargs(s.url, concurrency=2)) == 1.0
        assert s.max_in_flight == 2
    finally:
        s.close()


def test_service_failures_raise_instead_of_scoring():
    down = Service()
    url = down.url
    down.close()
    with pytest.raises(SandboxUnavailable):
        c.run_tests(respond("print(1)"), {"inputs": ["\n"], "outputs": ["1\n"]}, **fusion_kwargs(url))
    broken = Service(answer={"status": "SandboxError", "message": "no executor", "run_result": None})
    try:
        with pytest.raises(SandboxUnavailable, match="no executor"):
            c.run_tests(respond("print(2)"), {"inputs": ["\n"], "outputs": ["2\n"]}, **fusion_kwargs(broken.url))
    finally:
        broken.close()


def test_backend_settings_are_checked():
    with pytest.raises(ValueError, match="sandbox_fusion_url"):
        c.pass_rate(respond("print(1)"), ["assert True"], backend="sandbox_fusion")
    with pytest.raises(ValueError, match="local"):
        c.pass_rate(respond("print(1)"), ["assert True"], backend="remote")
