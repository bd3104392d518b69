"""Fetch files and hub modules into the cache: from a mirror or the origin, verified, atomically.

A download streams into `<cache>/.partial/` while its sha256 and md5 are computed, is checked for
truncation and against the publisher's hash, and only then is renamed into place: an interrupted,
truncated or tampered download leaves nothing in the cache. `offline` never opens a connection
(a folder mirror is still read) and says which file to place where.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgezoo.errors import ChecksumError, DownloadError
from edgezoo.paths import user_path
from edgezoo.zoo import cache
from edgezoo.zoo.safety import safe_extract_tar

# progress(label, bytes_done, bytes_total or None)
ProgressFn = Callable[[str, int, "int | None"], None]
_BLOCK = 1 << 16


@dataclass(frozen=True)
class Remote:
    """A file as its publisher serves it."""

    origin: str  # the publisher's URL
    relative_path: str  # its name in the cache's files/ and on a mirror
    file_hash: str | None = None  # hex md5 (32 digits) or sha256 (64 digits), as the publisher gives it
    hash_source: str = "the publisher"  # who gives the hash, for messages and reports

    @classmethod
    def for_url(cls, url: str, file_hash: str | None = None, hash_source: str = "the publisher") -> "Remote":
        return cls(url, cache.url_relative_path(url), file_hash, hash_source)

    @property
    def hash_algorithm(self) -> str | None:
        if self.file_hash is None:
            return None
        return {32: "md5", 64: "sha256"}.get(len(self.file_hash)) or _bad_hash(self.file_hash)


def _bad_hash(value: str):
    raise ValueError(f"'{value}' is neither an md5 (32 hex digits) nor a sha256 (64 hex digits)")


@dataclass(frozen=True)
class DownloadSettings:
    cache: Path
    offline: bool = False
    mirror: str | None = None  # a base URL (http, https) or a folder
    progress: ProgressFn | None = None
    timeout: float = 60.0

    @classmethod
    def from_options(cls, options) -> "DownloadSettings":
        """From a LoadOptions: explicit fields first, then the EDGEZOO_* environment variables."""
        return cls(
            cache=cache.cache_root(options.cache_dir),
            offline=cache.offline_setting(options.offline),
            mirror=cache.mirror_setting(options.mirror),
            progress=options.progress,
        )

    @property
    def mirror_is_folder(self) -> bool:
        return self.mirror is not None and not self.mirror.startswith(("http://", "https://"))


@dataclass(frozen=True)
class CachedFile:
    path: Path
    origin: str
    sha256: str
    size_bytes: int
    verification: str  # how the content was checked, in words

    def to_json(self) -> dict:
        return {"path": str(self.path), "origin": self.origin, "sha256": self.sha256, "size_bytes": self.size_bytes,
                "verification": self.verification}


def fetch_file(remote: Remote, settings: DownloadSettings) -> CachedFile:
    """The cached copy of `remote`, downloaded first if missing (or if the cached copy fails its hash)."""
    target = cache.file_path(settings.cache, remote.relative_path)
    if target.is_file():
        digests = _hash_file(target)
        if _matches(remote, digests):
            return _cached(target, remote, digests)
        target.unlink()  # a stale or damaged copy: fetch it again
    if settings.offline and not settings.mirror_is_folder:
        raise DownloadError(
            f"offline, and {target.name} is not in the cache. Download {remote.origin} on a connected machine "
            f"and place it at {target} (or set EDGEZOO_MIRROR to a folder that holds {remote.relative_path})."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _partial_file(settings.cache, target.name) as partial:
        digests = _download(remote, settings, partial)
        os.replace(partial, target)
    return _cached(target, remote, digests)


def fetch_archive(remote: Remote, module_dir: Path, settings: DownloadSettings, what: str) -> Path:
    """A .tar.gz fetched like a file, checked, then extracted (safely) into `module_dir`, atomically."""
    if module_dir.is_dir() and any(module_dir.iterdir()):
        return module_dir
    if settings.offline and not settings.mirror_is_folder:
        raise DownloadError(
            f"offline, and {what} is not in the cache. On a connected machine download {remote.origin}, extract the "
            f"archive into {module_dir}/ (the folder that holds saved_model.pb), or set EDGEZOO_MIRROR to a folder "
            f"that holds {remote.relative_path}."
        )
    module_dir.parent.mkdir(parents=True, exist_ok=True)
    with _partial_file(settings.cache, module_dir.name + ".tar.gz") as archive:
        _download(remote, settings, archive)
        staging = Path(tempfile.mkdtemp(prefix=module_dir.name + ".", dir=cache.partial_dir(settings.cache)))
        try:
            safe_extract_tar(archive, staging, what=f"the archive of {what}")
            if module_dir.is_dir() and any(module_dir.iterdir()):
                return module_dir  # another process finished the same module first
            if module_dir.exists():
                shutil.rmtree(module_dir)  # an empty leftover folder
            os.replace(staging, module_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return module_dir


@contextlib.contextmanager
def _partial_file(root: Path, name: str):
    """A temporary file in <cache>/.partial/, removed unless the caller renamed it away."""
    handle, path = tempfile.mkstemp(prefix=name + ".", suffix=".part", dir=cache.partial_dir(root))
    os.close(handle)
    try:
        yield Path(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _download(remote: Remote, settings: DownloadSettings, dest: Path) -> dict[str, str]:
    """Stream the file (from the mirror when one is set, else the origin) into dest; verify it; return its digests."""
    where = _location(remote, settings)
    digests = {"sha256": hashlib.sha256(), "md5": hashlib.md5()}
    received = 0
    label = Path(remote.relative_path).name
    with _open(where, remote, settings) as (stream, total):
        report = _progress_reporter(settings.progress, label, total)
        try:
            with open(dest, "wb") as out:
                for block in iter(lambda: stream.read(_BLOCK), b""):
                    out.write(block)
                    for digest in digests.values():
                        digest.update(block)
                    received += len(block)
                    report(received)
        except (http.client.IncompleteRead, OSError) as exc:
            raise DownloadError(
                f"the download of {where} broke off after {received:,} bytes"
                f"{f' of {total:,}' if total else ''} ({exc}); nothing was kept. Try again."
            ) from exc
    if total is not None and received != total:
        raise DownloadError(
            f"the download of {where} is truncated: {received:,} of {total:,} bytes arrived; nothing was kept. Try again."
        )
    hexes = {name: digest.hexdigest() for name, digest in digests.items()}
    if not _matches(remote, hexes):
        algorithm = remote.hash_algorithm
        raise ChecksumError(
            f"{where} failed its {algorithm} check: expected {remote.file_hash} ({algorithm} given by {remote.hash_source}), "
            f"got {hexes[algorithm]}. The file was not kept. If it came from a mirror, replace the mirror's copy "
            f"with the file from {remote.origin}."
        )
    return hexes


def _location(remote: Remote, settings: DownloadSettings) -> str | Path:
    if settings.mirror is None:
        return remote.origin
    if settings.mirror_is_folder:
        return user_path(settings.mirror) / remote.relative_path
    return settings.mirror.rstrip("/") + "/" + urllib.request.pathname2url(remote.relative_path)


@contextlib.contextmanager
def _open(where: str | Path, remote: Remote, settings: DownloadSettings):
    """Yield (readable stream, total size or None) for a mirror folder's file or a URL."""
    if isinstance(where, Path):
        if not where.is_file():
            raise DownloadError(
                f"the mirror folder has no {remote.relative_path} (looked for {where}). "
                f"Copy the file from {remote.origin} there."
            )
        with open(where, "rb") as stream:
            yield stream, where.stat().st_size
        return
    if settings.offline:  # a URL while offline: never reached, fetch_* refuse first; kept as a guard
        raise DownloadError(f"offline: not opening {where}.")
    hint = f" The mirror should hold {remote.relative_path} (the file from {remote.origin})." if settings.mirror else ""
    try:
        response = urllib.request.urlopen(urllib.request.Request(where, headers={"User-Agent": "edgezoo"}), timeout=settings.timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"cannot download {where}: HTTP {exc.code} {exc.reason}.{hint}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"cannot reach {where}: {reason}.{hint} Behind a firewall, set EDGEZOO_MIRROR to your artifact server "
            "or a folder; without a network, use --offline with a filled cache."
        ) from exc
    with response:
        length = response.headers.get("Content-Length")
        yield response, int(length) if length and length.isdigit() else None


def _progress_reporter(progress: ProgressFn | None, label: str, total: int | None) -> Callable[[int], None]:
    if progress is None:
        return lambda done: None
    step = max(total // 100, _BLOCK) if total else 1 << 20
    last = [-step]

    def report(done: int) -> None:
        if done - last[0] >= step or (total is not None and done >= total):
            last[0] = done
            progress(label, done, total)

    progress(label, 0, total)
    return report


def _hash_file(path: Path) -> dict[str, str]:
    digests = {"sha256": hashlib.sha256(), "md5": hashlib.md5()}
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            for digest in digests.values():
                digest.update(block)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def _matches(remote: Remote, digests: dict[str, str]) -> bool:
    return remote.file_hash is None or digests[remote.hash_algorithm] == remote.file_hash.lower()


def _cached(path: Path, remote: Remote, digests: dict[str, str]) -> CachedFile:
    if remote.file_hash is None:
        verification = "not verified: the publisher gives no hash (complete download checked by size)"
    else:
        verification = f"{remote.hash_algorithm} matches the one given by {remote.hash_source}"
    return CachedFile(path, remote.origin, digests["sha256"], path.stat().st_size, verification)
