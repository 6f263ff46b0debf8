"""The built-in server as a process: ``python -m chaos.proxy`` (port file, config, signals) and the launcher."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chaos.proxy.launcher import ToxiproxyProcess
from chaos.proxy.testing import EchoServer, connect, read_to_eof, recv_exact, wait_until
from chaos.toxiproxy import ToxiproxyError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer() as srv:
        yield srv


def start_cli(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    port_file = tmp_path / "port"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "chaos.proxy", "--port", "0", "--port-file", str(port_file),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    return proc, port_file


def wait_for_port(proc: subprocess.Popen[bytes], port_file: Path) -> int:
    wait_until(lambda: port_file.exists() or proc.poll() is not None, timeout=15, message="port file")
    assert proc.poll() is None, proc.communicate()
    return int(port_file.read_text())


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_the_config_and_shuts_down_cleanly(tmp_path: Path, echo: EchoServer, signum: int) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "echo", "listen": "127.0.0.1:0", "upstream": echo.address}]))
    proc, port_file = start_cli(tmp_path, "--config", str(config))
    try:
        port = wait_for_port(proc, port_file)
        listen = requests.get(f"http://127.0.0.1:{port}/proxies/echo", timeout=5).json()["listen"]
        with connect(listen) as sock:
            sock.sendall(b"hi")
            assert recv_exact(sock, 2) == b"hi"
            proc.send_signal(signum)
            assert read_to_eof(sock) == b""  # the shutdown closed the open connection
        out, err = proc.communicate(timeout=15)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    assert f"listening on http://127.0.0.1:{port}".encode() in out
    assert b"shutting down" in err and b"Traceback" not in err


def test_cli_refuses_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "x"}]))
    proc, _ = start_cli(tmp_path, "--config", str(config))
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 2 and b"missing required field: upstream at proxy 1" in err


def test_cli_reports_a_taken_api_port(tmp_path: Path) -> None:
    with ToxiproxyProcess(builtin=True) as running:
        proc = subprocess.run([sys.executable, "-m", "chaos.proxy", "--port", str(running.port)],
                              capture_output=True, timeout=15, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 2 and b"address already in use" in proc.stderr


def test_launcher_starts_and_stops_the_built_in_server(echo: EchoServer) -> None:
    process = ToxiproxyProcess(builtin=True)
    with process:
        assert process.kind == "built-in" and process.port > 0
        client = process.client()
        assert client.version() == "2.12.0-rmqh"
        proxy = client.create_proxy("p", echo.address)
        with connect(proxy.listen) as sock:
            sock.sendall(b"ok")
            assert recv_exact(sock, 2) == b"ok"
        pid = process.pid
        assert pid is not None
    assert not alive(pid)
    with pytest.raises(ToxiproxyError):
        client.version()


def test_launcher_reports_a_server_that_cannot_start(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text("{not json")
    process = ToxiproxyProcess(builtin=True, config=config)
    with pytest.raises(ToxiproxyError, match="exited with code 2.*bad request body"):
        process.start()
    assert process.pid is None  # nothing left running


def test_the_server_exits_when_its_parent_is_gone(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    parent = (
        "import os, pathlib, subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-m', 'chaos.proxy', '--port', '0', '--parent-pid', str(os.getpid())],"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(p.pid))\n"
        "os._exit(0)  # gone at once, leaving the server behind on purpose\n"
    )
    subprocess.run([sys.executable, "-c", parent], check=True, timeout=15, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    child = int(pid_file.read_text())
    wait_until(lambda: not alive(child), timeout=15, message="orphaned server exit")


def test_importing_the_proxy_does_not_pull_in_locust_or_gevent() -> None:
    code = ("import sys, chaos.proxy, chaos.proxy.launcher, chaos.toxiproxy; "
            "assert not {'locust', 'gevent'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
