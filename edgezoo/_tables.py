"""Strict checks of TOML tables (target profiles, build matrices): every problem named with where it is."""

from __future__ import annotations

import difflib

_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list", dict: "a table"}


def type_ok(value: object, kind: type | tuple[type, ...]) -> bool:
    """TOML's types as a schema means them: an int is a number, a bool is neither."""
    for k in kind if isinstance(kind, tuple) else (kind,):
        if k is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if k is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if k not in (int, float) and isinstance(value, k):
            return True
    return False


def type_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(_KIND_NAMES[k] for k in (kind if isinstance(kind, tuple) else (kind,)))


def unknown_keys(table: dict, allowed, where: str) -> list[str]:
    """One problem per key the schema does not know, with the closest known key as a hint."""
    problems = []
    for key in sorted(set(table) - set(allowed)):
        close = difflib.get_close_matches(key, list(allowed), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(f"{where}: unknown key '{key}'{hint}; allowed keys: {', '.join(allowed)}.")
    return problems
