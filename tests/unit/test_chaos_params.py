"""Fault parameters: typed, validated, every error naming its parameter."""
from __future__ import annotations

import pytest

from chaos.base import build_fault, registry
from chaos.params import Param, parse_params, split_cli_params
from harness.errors import ConfigError

SCHEMA = (Param("latency", int, "ms", min=0), Param("jitter", int, "ms", 0, min=0, max=100),
          Param("stream", str, "dir", "downstream", choices=("upstream", "downstream")))


def test_strings_are_converted_and_defaults_filled() -> None:
    assert parse_params(SCHEMA, {"latency": "250"}) == {"latency": 250, "jitter": 0, "stream": "downstream"}
    assert parse_params(SCHEMA, {"latency": 5, "stream": "upstream"})["stream"] == "upstream"


def test_every_error_is_reported_with_its_parameter() -> None:
    with pytest.raises(ConfigError) as info:
        parse_params(SCHEMA, {"jitter": "101", "stream": "sideways", "colour": "red"})
    text = str(info.value)
    for part in ("--latency: required", "--jitter: 101 is outside 0..100", "--stream: 'sideways' is not one of",
                 "--colour: unknown parameter; valid ones are --latency, --jitter, --stream"):
        assert part in text


def test_types_are_strict() -> None:
    for bad in ("1.5", "x", True):
        with pytest.raises(ConfigError, match="--latency: .* is not an integer"):
            parse_params(SCHEMA, {"latency": bad})


def test_cli_tokens_split_into_targets_and_params() -> None:
    assert split_cli_params(["broker-a-0", "--latency", "100", "--jitter=5", "ns-1"]) == \
        (["broker-a-0", "ns-1"], {"latency": "100", "jitter": "5"})
    with pytest.raises(ConfigError, match="--latency: needs a value"):
        split_cli_params(["--latency"])


def test_fault_names_are_kebab_case_and_schemas_are_well_formed() -> None:
    faults = registry()
    assert {"kill", "stop", "start", "restart", "pause", "resume", "kill-master", "kill-namesrv",
            "partition-namesrv", "isolate-broker", "partition-leader", "latency", "bandwidth", "reset-peer",
            "slicer", "link-down"} <= set(faults)
    for name, cls in faults.items():
        assert name == name.lower() and "_" not in name and cls.summary
        assert len({p.name for p in cls.params}) == len(cls.params)


def test_unknown_fault_names_the_choices_and_target_counts_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown fault 'kil'; faults are .*kill-master"):
        build_fault("kil", [], {})
    with pytest.raises(ConfigError, match="kill-master takes one target"):
        build_fault("kill-master", ["broker-a", "broker-b"], {})
    with pytest.raises(ConfigError, match="needs a target: NODE"):
        build_fault("kill", [], {})
