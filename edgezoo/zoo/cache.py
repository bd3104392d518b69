"""The one cache folder every downloaded file and hub module lands in, and where a mirror keeps them.

Chosen by, in order: `--cache-dir` (LoadOptions.cache_dir), the EDGEZOO_CACHE variable, then
`$XDG_CACHE_HOME/edgezoo` or `~/.cache/edgezoo`. Layout:

    files/<host>/<path>        a downloaded file, at its origin URL's host and path
    hub/<sha1 of handle>/      an extracted TF Hub module, in tensorflow_hub's own layout,
                               so TFHUB_CACHE_DIR=<cache>/hub shares it with tensorflow_hub
    .partial/                  downloads in progress (same file system, so the final rename is atomic)
    .recorded/<host>/<path>.sha256   the sha256 of each file as downloaded, checked whenever the file is used
    .recorded/<host>/<path>.files.json   the sha256 of each file of an extracted hub module, checked on each use
    .locks/<sha1 of host/path>.lock   held (flock) by the process fetching that file; the others wait for it

A mirror (EDGEZOO_MIRROR: a base URL or a folder) holds the same `<host>/<path>` names as `files/`,
and hub modules as `<host>/<path>.tar.gz`: copying a cache's `files/` folder onto a web server
makes a mirror.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from pathlib import Path
from urllib.parse import urlsplit

from edgezoo.errors import UsageError
from edgezoo.paths import user_path

CACHE_ENV = "EDGEZOO_CACHE"
MAX_SEGMENT_BYTES = 200  # of a URL's host or path part: a file name in the cache, with room for the sidecars' suffixes
MIRROR_ENV = "EDGEZOO_MIRROR"
OFFLINE_ENV = "EDGEZOO_OFFLINE"


def cache_root(explicit: Path | str | None = None) -> Path:
    if explicit:
        return user_path(explicit).resolve()
    if os.environ.get(CACHE_ENV):
        return user_path(os.environ[CACHE_ENV]).resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return (Path(base) / "edgezoo").resolve()


def mirror_setting(explicit: str | None = None) -> str | None:
    return explicit or os.environ.get(MIRROR_ENV) or None


def offline_setting(explicit: bool = False) -> bool:
    return explicit or os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def url_relative_path(url: str) -> str:
    """`https://host/a/b.h5` -> `host/a/b.h5`: the name a URL's file has in the cache and on a mirror."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise UsageError(f"'{url}' is not a valid URL: {exc}.") from None
    if not parts.netloc:
        raise UsageError(f"'{url}' is not a URL with a host.")
    segments = [s for s in parts.path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise UsageError(f"the URL '{url}' has '.' or '..' in its path; give the plain URL of the file.")
    if any(len(s.encode("utf8", "replace")) > MAX_SEGMENT_BYTES for s in [parts.netloc, *segments]):
        raise UsageError(f"the URL '{url[:80]}...' has a part longer than {MAX_SEGMENT_BYTES} bytes, too long for a file name in the cache.")
    return posixpath.join(parts.netloc.lower(), *segments)


def file_path(root: Path, relative_path: str) -> Path:
    return root / "files" / relative_path


def hub_module_dir(root: Path, handle: str) -> Path:
    """Where tensorflow_hub caches `handle`: the sha1 of the handle, under <cache>/hub."""
    return root / "hub" / hashlib.sha1(handle.encode("utf8")).hexdigest()


def _sidecar(root: Path, kind: str, relative_path: str, suffix: str) -> Path:
    """A file about a cached file, outside files/ (so that a copy of files/ stays a clean mirror)."""
    path = root / kind / (relative_path + suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def recorded_sha256(root: Path, relative_path: str) -> str | None:
    """The sha256 recorded when the cached file was downloaded, or None for a file from before records existed."""
    try:
        return (root / ".recorded" / (relative_path + ".sha256")).read_text().strip() or None
    except OSError:
        return None


def record_sha256(root: Path, relative_path: str, sha256: str) -> None:
    path = _sidecar(root, ".recorded", relative_path, ".sha256")
    temporary = path.with_name(path.name + f".{os.getpid()}")
    temporary.write_text(sha256 + "\n")
    temporary.replace(path)


def _manifest(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file in a folder."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        found[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return found


def record_manifest(root: Path, relative_path: str, folder: Path) -> None:
    """The sha256 of each file of an extracted module, as extracted."""
    path = _sidecar(root, ".recorded", relative_path, ".files.json")
    temporary = path.with_name(path.name + f".{os.getpid()}")
    temporary.write_text(json.dumps(_manifest(folder), indent=0))
    temporary.replace(path)


def manifest_matches(root: Path, relative_path: str, folder: Path) -> bool:
    """Whether an extracted module still holds exactly the files it was extracted with (a module from before records
    existed is recorded as it is now)."""
    path = root / ".recorded" / (relative_path + ".files.json")
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        record_manifest(root, relative_path, folder)
        return True
    return recorded == _manifest(folder)


def lock_path(root: Path, relative_path: str) -> Path:
    """The lock file that lets one process at a time fetch a cached file (zoo/download.py)."""
    folder = root / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (hashlib.sha1(relative_path.encode("utf8", "replace")).hexdigest() + ".lock")


def partial_dir(root: Path) -> Path:
    folder = root / ".partial"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
