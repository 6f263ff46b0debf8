"""Toxics: one per module, registered by their Toxiproxy type name.

Importing this package registers all of them: ``latency``, ``bandwidth``, ``slow_close``, ``timeout``,
``reset_peer``, ``slicer``, ``limit_data`` and ``noop``. There is no ``down`` toxic: a proxy is taken down
by disabling it.
"""
from __future__ import annotations

from chaos.proxy.toxics import (  # noqa: F401  (imported to register)
    bandwidth,
    latency,
    limit_data,
    noop,
    reset_peer,
    slicer,
    slow_close,
    timeout,
)
from chaos.proxy.toxics.base import Emit, EmitEof, Link, Toxic, lookup, register, type_names

__all__ = ["Emit", "EmitEof", "Link", "Toxic", "lookup", "register", "type_names"]
