"""Flags more than one command takes, and the argparse types they use."""

from __future__ import annotations

import argparse

from edgezoo.cli.console import Console


def common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON result on stdout")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's and the converters' own logs, and tracebacks")


def zoo_access_flags(parser: argparse.ArgumentParser, trust: bool = True) -> None:
    """Flags for fetching and loading models (typed into LoadOptions by load_options)."""
    parser.add_argument("--offline", action="store_true", help="never touch the network; say which file to place where when one is missing (also EDGEZOO_OFFLINE=1)")
    parser.add_argument("--cache-dir", metavar="DIR", help="the cache folder for weights and hub modules (default: $EDGEZOO_CACHE or ~/.cache/edgezoo)")
    parser.add_argument("--mirror", metavar="URL_OR_DIR", help="fetch weights and hub modules from this server or folder instead of their origin (default: $EDGEZOO_MIRROR)")
    if trust:
        parser.add_argument("--trust-model", action="store_true",
                            help="run a model's own code: allow Lambda layers and custom objects in .keras/.h5 files (their Python "
                            "code is imported and run), and SavedModel graphs with file system ops (ReadFile, WriteFile...), "
                            "Python ops (PyFunc, EagerPyFunc) or ops of a custom op library. It never opens archives whose "
                            "members leave their folder or pass the size limits, never loads a pickle, and never reads a "
                            "weight file outside the model's folder (docs/security.md)")


def load_options(args, console: Console):
    from edgezoo.zoo import LoadOptions

    return LoadOptions(trust_model=args.trust_model, offline=args.offline, cache_dir=args.cache_dir, mirror=args.mirror,
                       progress=console.progress)


def name_value(text: str, flag: str) -> tuple[str, str]:
    """NAME=VALUE as an argparse type: a malformed value is argparse's usage error (exit 2)."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"{flag} takes NAME=VALUE, got '{text}'")
    return name, value
