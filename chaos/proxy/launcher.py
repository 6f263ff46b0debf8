"""Run a Toxiproxy server as a child process: ``toxiproxy-server`` from PATH if there is one, else the built-in
``python -m chaos.proxy``. Start-up waits until the API answers (polling, with a deadline); stop leaves no
process behind."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from chaos.toxiproxy import DEFAULT_TIMEOUT, ToxiproxyClient, ToxiproxyError


def find_toxiproxy_server() -> str | None:
    """The path of a ``toxiproxy-server`` binary on PATH, if there is one."""
    return shutil.which("toxiproxy-server")


class ToxiproxyProcess:
    """A Toxiproxy server in a child process: ``toxiproxy-server`` from PATH when there is one (unless
    ``builtin``), else the built-in ``python -m chaos.proxy``. ``start()`` returns once the API answers;
    ``stop()`` terminates it (SIGTERM, then SIGKILL) and leaves no process behind."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, builtin: bool = False,
                 config: Path | None = None, log_path: Path | None = None, start_timeout: float = 15.0) -> None:
        self.host = host
        self.port = port
        """The bound port once started; 0 asks for a free one."""
        self.binary = None if builtin else find_toxiproxy_server()
        self.kind = "toxiproxy-server" if self.binary else "built-in"
        self.config = config
        self.log_path = log_path
        """Where the server's log goes; by default a temporary file removed by ``stop()``."""
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def client(self, timeout: float = DEFAULT_TIMEOUT) -> ToxiproxyClient:
        return ToxiproxyClient(self.host, self.port, timeout)

    def start(self) -> ToxiproxyProcess:
        assert self._proc is None, "already started"
        self._tmp = Path(tempfile.mkdtemp(prefix="rmqh-toxiproxy-"))
        self.log_path = self.log_path or self._tmp / "toxiproxy.log"
        port_file = self._tmp / "port"
        command, env = self._command(port_file)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=log, env=env)
        try:
            self._wait_ready(port_file)
        except BaseException:
            self.stop()
            raise
        return self

    def _command(self, port_file: Path) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        if self.binary:
            # toxiproxy-server cannot report a port it picked, so choose a free one for it.
            self.port = self.port or _free_port(self.host)
            command = [self.binary, "-host", self.host, "-port", str(self.port), "-proxy-metrics"]
            return command + (["-config", str(self.config)] if self.config else []), env
        root = str(Path(__file__).resolve().parents[1])  # so the child imports this checkout's chaos package
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "chaos.proxy", "--host", self.host, "--port", str(self.port),
                   "--port-file", str(port_file), "--parent-pid", str(os.getpid())]
        return command + (["--config", str(self.config)] if self.config else []), env

    def _wait_ready(self, port_file: Path) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ToxiproxyError(None, f"{self.kind} exited with code {self._proc.returncode}: {self._log_tail()}")
            if not self.binary and port_file.exists():
                self.port = int(port_file.read_text())
            if self.port and _answers(self.url):
                return
            time.sleep(0.02)
        raise ToxiproxyError(None, f"{self.kind} did not answer within {self.start_timeout:g} s: {self._log_tail()}")

    def _log_tail(self, lines: int = 5) -> str:
        try:
            assert self.log_path is not None
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:]) or "(no log)"
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> ToxiproxyProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return requests.get(url + "/version", timeout=1.0).status_code == 200
    except requests.RequestException:
        return False
