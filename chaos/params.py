"""Typed fault parameters: each fault declares a schema; values arrive as CLI strings or Python values.

Validation reports every problem at once, each naming its parameter (``--latency: 'x' is not an integer``),
and lists the valid names when an unknown one is given. Parameters are plain JSON values so an Effect that
carries them can be written to disk and healed by another process.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError

ParamValue = int | float | str
_REQUIRED: Any = object()


@dataclass(frozen=True)
class Param:
    name: str
    type: type[int] | type[float] | type[str]
    help: str
    default: Any = _REQUIRED
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def describe(self) -> str:
        """Type, range and default in one line, for `rmqh chaos list` and --help."""
        kind = "|".join(self.choices) if self.choices else self.type.__name__
        bounds = _bounds(self.min, self.max)
        default = "required" if self.required else f"default {self.default if self.default != '' else '-'}"
        return f"{kind}{bounds}, {default}"

    def convert(self, raw: object) -> ParamValue:
        """One value, or ConfigError naming the parameter."""
        value = self._typed(raw)
        if self.choices and value not in self.choices:
            raise ConfigError(f"{self.flag}: {value!r} is not one of {', '.join(self.choices)}")
        if isinstance(value, (int, float)) and not _inside(value, self.min, self.max):
            raise ConfigError(f"{self.flag}: {value} is outside{_bounds(self.min, self.max)}")
        return value

    def _typed(self, raw: object) -> ParamValue:
        if isinstance(raw, bool):
            raise ConfigError(f"{self.flag}: {raw!r} is not {_article(self.type)}")
        try:
            if self.type is int:
                return int(raw) if isinstance(raw, int) else int(str(raw), 10)
            if self.type is float:
                return float(raw)  # type: ignore[arg-type]
            return str(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{self.flag}: {raw!r} is not {_article(self.type)}") from None


def _article(kind: type) -> str:
    return {int: "an integer", float: "a number"}.get(kind, "a string")


def _bounds(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return ""
    return f" {'' if low is None else f'{low:g}'}..{'' if high is None else f'{high:g}'}"


def _inside(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def parse_params(schema: Sequence[Param], raw: Mapping[str, object]) -> dict[str, ParamValue]:
    """Validate ``raw`` (keys may use - or _) against ``schema``; every error in one ConfigError."""
    by_name = {p.name: p for p in schema}
    values: dict[str, ParamValue] = {}
    errors: list[str] = []
    invalid: set[str] = set()
    for key, value in raw.items():
        name = key.lstrip("-").replace("-", "_")
        param = by_name.get(name)
        if param is None:
            valid = ", ".join(p.flag for p in schema) or "none"
            errors.append(f"--{key.lstrip('-')}: unknown parameter; valid ones are {valid}")
            continue
        try:
            values[name] = param.convert(value)
        except ConfigError as exc:
            errors.append(str(exc))
            invalid.add(name)
    for param in schema:
        if param.name not in values and param.name not in invalid:
            if param.required:
                errors.append(f"{param.flag}: required")
            else:
                values[param.name] = param.default
    if errors:
        raise ConfigError("; ".join(errors))
    return values


def split_cli_params(tokens: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """``['broker-a-0', '--latency', '100', '--jitter=5']`` -> (['broker-a-0'], {'latency': '100', 'jitter': '5'})."""
    targets: list[str] = []
    params: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--") and len(token) > 2:
            key, eq, value = token[2:].partition("=")
            if not eq:
                if i + 1 >= len(tokens):
                    raise ConfigError(f"--{key}: needs a value")
                value, i = tokens[i + 1], i + 1
            params[key] = value
        else:
            targets.append(token)
        i += 1
    return targets, params
