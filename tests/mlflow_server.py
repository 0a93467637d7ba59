"""A real `mlflow server` for the tests: loopback, a free port, one worker, its own SQLite backend
and artifact root; started and stopped (by its process group) on demand, so outage tests can
take it away mid-run and bring it back on the same port and store."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, root: Path, port: int | None = None):
        self.root = root
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 60) -> "MlflowServer":
        mlflow = Path(sys.executable).with_name("mlflow")
        log = (self.root / "server.log").open("a")
        self.proc = subprocess.Popen(
            [
                str(mlflow),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.root / 'srv.db'}",
                "--artifacts-destination",
                str(self.root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.root / "server.log").read_text()[-2000:]
                raise RuntimeError(f"mlflow server exited: {log}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"mlflow server did not answer on {self.uri} within {timeout} s")

    def stop(self) -> None:
        """SIGKILL the server's whole process group (the parent and its uvicorn worker): an
        outage as abrupt as a crashed host, and no 6 s wait for a graceful shutdown."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None
        deadline = time.monotonic() + 10  # the port is free again before a restart
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)


class StallingProxy:
    """A reverse proxy to a server that answers 503 (a load balancer whose backend restarts) to
    every request for `stall_s` seconds from the first whose path contains `pattern`: a store
    that stops answering at one chosen call of a job, the same at every run of the test.
    `lose_answers`: the requests reach the server first, only their answers are lost (a
    gateway timing out on a slow backend)."""

    def __init__(self, upstream: str, pattern: str, stall_s: float, lose_answers: bool = False):
        self.upstream = urlsplit(upstream).netloc
        self.pattern, self.stall_s, self.lose_answers = pattern, stall_s, lose_answers
        self.stalled_since: float | None = None
        self.stalled = 0  # requests answered 503
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stalling(self, path: str) -> bool:
        if self.stalled_since is None and self.pattern in path:
            self.stalled_since = time.monotonic()
        return self.stalled_since is not None and (
            time.monotonic() - self.stalled_since < self.stall_s
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stalling = proxy.stalling(self.path)
                if stalling and not proxy.lose_answers:
                    proxy.stalled += 1
                    self.send_error(503, "backend restarting")
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                if stalling:
                    proxy.stalled += 1
                    self.send_error(503, "backend timed out")
                    return
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in HOP | {"content-length"}:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

            def log_message(self, *args) -> None:
                pass

        return Handler


HOP = {"connection", "keep-alive", "transfer-encoding", "host"}
