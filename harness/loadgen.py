"""Running Locust as a subprocess (never imported here: Locust monkey-patches whatever imports it)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cluster.topology import DEFAULT_TOPIC

LOCUSTFILE = Path(__file__).resolve().parents[1] / "loadtests" / "locustfile.py"


@dataclass(frozen=True)
class LoadSpec:
    """One Locust load: how many users of each kind, what they send, for how long."""

    duration: float = 20.0
    producers: int = 4
    consumers: int = 2
    message_size: int = 1024
    #: Sends per second per producer user; 0 = as fast as the cluster acknowledges.
    producer_rate: float = 0.0
    #: Sends in flight per producer task; >1 pipelines async sends.
    send_window: int = 8
    topic: str = DEFAULT_TOPIC
    consumer_group: str = "rmqh-consumer"

    @property
    def users(self) -> int:
        return self.producers + self.consumers


def locust_env(state_dir: Path, parent_pid: int = 0) -> dict[str, str]:
    env = dict(os.environ)
    env["HARNESS_STATE_DIR"] = str(state_dir)
    env["HARNESS_PARENT_PID"] = str(parent_pid)
    root = str(LOCUSTFILE.parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def option_args(spec: LoadSpec, state_dir: Path) -> list[str]:
    # The state dir on the command line also lets `rmqh down` recognise a Locust a dead harness left.
    return ["--state-dir", str(state_dir), "--topic", spec.topic, "--message-size", str(spec.message_size),
            "--producer-rate", str(spec.producer_rate), "--send-window", str(spec.send_window),
            "--consumer-group", spec.consumer_group, "--consumer-users", str(spec.consumers)]


def headless_command(spec: LoadSpec, state_dir: Path, csv_prefix: Path, html: Path, json_prefix: Path) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "-u", str(spec.users), "-r", str(spec.users), "-t", f"{max(1, round(spec.duration))}s",
            "--stop-timeout", "5", "--csv", str(csv_prefix), "--csv-full-history", "--html", str(html),
            "--json-file", str(json_prefix), "--loglevel", "WARNING", *option_args(spec, state_dir)]


def web_ui_command(spec: LoadSpec, state_dir: Path, host: str, port: int, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--web-host", host,
            "--web-port", str(port), "-u", str(spec.users), "-r", str(spec.users), *option_args(spec, state_dir),
            *extra]


def start_headless(spec: LoadSpec, state_dir: Path, csv_prefix: Path, html: Path, json_prefix: Path,
                   log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(headless_command(spec, state_dir, csv_prefix, html, json_prefix),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=locust_env(state_dir, os.getpid()))


@dataclass
class LiveCounts:
    sent: int = 0
    send_failures: int = 0
    consumed: int = 0


def read_live_counts(stats_csv: Path) -> LiveCounts:
    """Totals so far from Locust's periodically rewritten stats CSV (missing or partial file: zeros)."""
    counts = LiveCounts()
    try:
        with open(stats_csv, newline="") as fh:
            for row in csv.DictReader(fh):
                kind, n, fails = row.get("Type"), int(row.get("Request Count") or 0), int(row.get("Failure Count") or 0)
                if kind == "SEND":
                    counts.sent += n - fails
                    counts.send_failures += fails
                elif kind == "CONSUME":
                    counts.consumed += n
    except (OSError, ValueError):
        pass
    return counts
