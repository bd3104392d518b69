"""The one lookup behind every registry (formats and their runtimes, executors, tasks): a name -> a module path,
imported when first asked for, because each module pulls in its own heavy library."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgezoo.errors import UsageError


def lookup(table: dict[str, str], name: str, what: str) -> ModuleType:
    """The module registered under `name`; an unknown name is a UsageError that lists the known ones."""
    try:
        module_name = table[name]
    except KeyError:
        raise UsageError(f"unknown {what} '{name}'. Known: {', '.join(table)}.") from None
    return importlib.import_module(module_name)
