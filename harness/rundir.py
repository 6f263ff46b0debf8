"""Run directory layout, atomic writes, meta.json and the ``latest`` link.

A run lives in ``<root>/<name>/<UTC time YYYYmmddTHHMMSSZ>/``; ``<root>/latest`` points at the newest one.
Everything that reads a run (checkers, the report) goes through :class:`RunDir`, so the layout is written
down once. Files that are written whole (meta.json, topology.json, report.html) are written atomically:
a reader, or a crash, never sees half a file.
"""
from __future__ import annotations

import json
import os
import platform
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import psutil

from harness.errors import ConfigError

RunStatus = Literal["running", "completed", "failed", "interrupted"]
"""``running`` is only ever on disk while a run is in progress, or after the harness itself was killed."""

DEFAULT_ROOT = Path("runs")
LATEST = "latest"
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_STAMP_RE = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# mkstemp creates files 0600; atomic writes should get the mode a plain open() would. Reading the umask
# means setting it, so do it once, at import, before any writer thread exists.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory. Creating the object touches nothing on disk."""

    path: Path

    @property
    def name(self) -> str:
        """The experiment name (the parent folder)."""
        return self.path.parent.name

    @property
    def stamp(self) -> str:
        """The UTC start time as the folder spells it."""
        return self.path.name

    @property
    def meta(self) -> Path:
        return self.path / "meta.json"

    @property
    def history(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def topology(self) -> Path:
        return self.path / "cluster" / "topology.json"

    @property
    def process_csv(self) -> Path:
        return self.path / "metrics" / "process.csv"

    @property
    def system_csv(self) -> Path:
        return self.path / "metrics" / "system.csv"

    @property
    def locust_dir(self) -> Path:
        return self.path / "locust"

    @property
    def locust_prefix(self) -> Path:
        """What to pass to Locust's ``--csv`` and ``--json-file`` (Locust appends the suffixes itself)."""
        return self.locust_dir / "stats"

    @property
    def locust_json(self) -> Path:
        return self.locust_dir / "stats.json"

    @property
    def locust_stats_csv(self) -> Path:
        return self.locust_dir / "stats_stats.csv"

    @property
    def locust_history_csv(self) -> Path:
        return self.locust_dir / "stats_stats_history.csv"

    @property
    def locust_html(self) -> Path:
        return self.locust_dir / "locust.html"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    def make_layout(self) -> None:
        """Create the sub-folders writers expect to exist."""
        for sub in ("cluster", "metrics", "locust"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)


def utc_stamp(epoch: float | None = None) -> str:
    """``YYYYmmddTHHMMSSZ`` for ``epoch`` (default: now)."""
    return time.strftime(_STAMP_FORMAT, time.gmtime(time.time() if epoch is None else epoch))


def iso_utc(epoch: float | None = None) -> str:
    """An ISO-8601 UTC time with milliseconds, as meta.json stores times."""
    t = time.time() if epoch is None else epoch
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def create_run(name: str, root: Path = DEFAULT_ROOT, now: float | None = None) -> RunDir:
    """Create ``<root>/<name>/<stamp>/`` with its sub-folders and point ``latest`` at it.

    Two runs started within the same second get ``-2``, ``-3``... suffixes rather than sharing a folder."""
    if not _NAME_RE.match(name) or name == LATEST:
        raise ConfigError(f"run name {name!r}: use letters, digits, '.', '_' or '-', and not {LATEST!r}")
    parent = Path(root) / name
    parent.mkdir(parents=True, exist_ok=True)
    stamp = utc_stamp(now)
    for attempt in range(1, 1000):
        path = parent / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        run = RunDir(path)
        run.make_layout()
        update_latest(run, root)
        return run
    raise ConfigError(f"{parent}: too many runs started at {stamp}")


def update_latest(run: RunDir, root: Path = DEFAULT_ROOT) -> None:
    """Point ``<root>/latest`` at ``run`` (relative, so the tree can be moved); atomic via a renamed link."""
    link = Path(root) / LATEST
    tmp = link.with_name(f".{LATEST}.{uuid.uuid4().hex}.tmp")
    os.symlink(os.path.relpath(run.path, link.parent), tmp)
    os.replace(tmp, link)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """Pretty JSON, atomically; values JSON cannot hold (paths, enums) are written as strings."""
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def host_info() -> dict[str, Any]:
    """What meta.json records about the machine a run ran on."""
    return {"cpus": os.cpu_count(), "mem_bytes": psutil.virtual_memory().total, "platform": platform.platform()}


def harness_version() -> str:
    try:
        return metadata.version("rmq-harness")
    except metadata.PackageNotFoundError:  # running from a checkout that was never pip-installed
        return "unknown"


def new_meta(run: RunDir, *, seed: int | None, cluster: dict[str, Any] | None = None,
             load: dict[str, Any] | None = None, started: float | None = None) -> dict[str, Any]:
    """The meta.json of a run that has just started (status ``running``, no finish time yet)."""
    return {
        "name": run.name,
        "started_utc": iso_utc(started),
        "finished_utc": None,
        "status": "running",
        "harness_version": harness_version(),
        "python": platform.python_version(),
        "host": host_info(),
        "seed": seed,
        "cluster": cluster or {},
        "load": load or {},
    }


def write_meta(run: RunDir, meta: dict[str, Any]) -> None:
    write_json_atomic(run.meta, meta)


def read_meta(run: RunDir) -> dict[str, Any]:
    """meta.json as a dict; ``{}`` when the run never got as far as writing it."""
    try:
        data = json.loads(run.meta.read_text())
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def finish_meta(run: RunDir, status: RunStatus, finished: float | None = None) -> dict[str, Any]:
    """Stamp the finish time and final status into meta.json and return the new content."""
    meta = read_meta(run)
    meta.update(finished_utc=iso_utc(finished), status=status)
    write_meta(run, meta)
    return meta


def parse_iso_utc(text: str | None) -> float | None:
    """The epoch seconds of an :func:`iso_utc` string, or None when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def find_run(ref: str | Path, root: Path = DEFAULT_ROOT) -> RunDir:
    """Resolve ``latest``, a run name (its newest run), a path to a run, or a path to a name folder."""
    root = Path(root)
    # A name under the runs root wins over a same-named folder in the current directory.
    candidates = [Path(ref)] if Path(ref).is_absolute() else [root / ref, Path(ref)]
    for cand in candidates:
        if cand.is_dir():
            found = _run_in(cand.resolve())
            if found is not None:
                return found
    raise ConfigError(f"no run found for {str(ref)!r} (looked in {', '.join(str(c) for c in candidates)})")


def _run_in(folder: Path) -> RunDir | None:
    if is_run_dir(folder):
        return RunDir(folder)
    runs = sorted((p for p in folder.iterdir() if p.is_dir() and _STAMP_RE.match(p.name)), key=_stamp_key)
    return RunDir(runs[-1]) if runs else None


def is_run_dir(folder: Path) -> bool:
    """A folder is a run when it has a meta.json or a history (a run killed early may have only the latter)."""
    return (folder / "meta.json").is_file() or (folder / "history.jsonl").is_file()


def _stamp_key(p: Path) -> tuple[str, int]:
    stamp, _, suffix = p.name.partition("-")
    return stamp, int(suffix or 1)
