"""``python -m reports RUN``: render report.html for an existing run directory (path, name or ``latest``)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.rundir import DEFAULT_ROOT, find_run
from reports.render import render_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    parser.add_argument("run", help="run directory, run name (its newest run) or 'latest'")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="runs folder (default: ./runs)")
    parser.add_argument("-o", "--out", type=Path, help="output file (default: <run>/report.html)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        path = render_report(find_run(args.run, args.root), args.out)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
