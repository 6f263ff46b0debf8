"""Click's error classes as rmqh meets them: typer >= 0.29 carries its own copy of click (and its own Abort
and Exit), so an error may come from either copy. Catch both."""
from __future__ import annotations

import click
import typer

try:
    from typer._click import exceptions as _bundled
except ImportError:  # an older typer that uses click itself
    _bundled = click.exceptions  # type: ignore[assignment]

CLICK_ERRORS: tuple[type[Exception], ...] = (click.ClickException, _bundled.ClickException)
ABORTS: tuple[type[BaseException], ...] = (click.Abort, typer.Abort, KeyboardInterrupt)
EXITS: tuple[type[BaseException], ...] = (click.exceptions.Exit, typer.Exit)
