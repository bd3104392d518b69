"""Fetch files and hub modules into the cache: from a mirror or the origin, verified, atomically.

A download streams into `<cache>/.partial/` while its sha256 and md5 are computed, is checked for
truncation and against the publisher's hash, and only then is renamed into place: an interrupted,
truncated or tampered download leaves nothing in the cache. `offline` never opens a connection
(a folder mirror is still read) and says which file to place where.

Faults: a server that sends nothing for DOWNLOAD_TIMEOUT seconds (edgezoo/limits.py) is given up on; two
processes that want the same file take turns through a lock file in `<cache>/.locks/` (the second waits up
to LOCK_TIMEOUT, then finds the file cached); the sha256 of every download is recorded in `<cache>/.recorded/`
and checked whenever the cached copy is used, so a copy damaged later is fetched again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgezoo import limits
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
    timeout: float | None = None  # seconds without data before a download is given up; None: limits.DOWNLOAD_TIMEOUT
    lock_timeout: float | None = None  # seconds to wait for another process fetching the same file; None: limits.LOCK_TIMEOUT

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
    def stall_seconds(self) -> float:
        return self.timeout if self.timeout is not None else limits.DOWNLOAD_TIMEOUT.value()

    @property
    def lock_seconds(self) -> float:
        return self.lock_timeout if self.lock_timeout is not None else limits.LOCK_TIMEOUT.value()

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
    """The cached copy of `remote`, downloaded first if missing (or if the cached copy fails its hash, the publisher's
    or the one recorded when it was downloaded). One process at a time per file: the others wait, then use it."""
    target = cache.file_path(settings.cache, remote.relative_path)
    with _download_lock(settings, remote.relative_path):
        found = _usable_copy(target, remote, settings)
        if found is not None:
            return found
        return _fetch_file(remote, settings, target)


def _usable_copy(target: Path, remote: Remote, settings: DownloadSettings) -> CachedFile | None:
    if not target.is_file():
        return None
    digests = _hash_file(target)
    recorded = cache.recorded_sha256(settings.cache, remote.relative_path)
    if _matches(remote, digests) and recorded in (None, digests["sha256"]):
        if recorded is None:
            cache.record_sha256(settings.cache, remote.relative_path, digests["sha256"])  # a copy from before records existed
        return _cached(target, remote, digests)
    target.unlink()  # changed since it was downloaded, or stale: fetch it again
    return None


def _fetch_file(remote: Remote, settings: DownloadSettings, target: Path) -> CachedFile:
    if settings.offline and not settings.mirror_is_folder:
        raise DownloadError(
            f"offline, and {target.name} is not in the cache. Download {remote.origin} on a connected machine "
            f"and place it at {target} (or set EDGEZOO_MIRROR to a folder that holds {remote.relative_path})."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _partial_file(settings.cache, target.name) as partial:
        digests = _download(remote, settings, partial)
        cache.record_sha256(settings.cache, remote.relative_path, digests["sha256"])
        os.replace(partial, target)
    return _cached(target, remote, digests)


@contextlib.contextmanager
def _download_lock(settings: DownloadSettings, relative_path: str):
    """An exclusive lock on one cached file across processes (flock: released by the kernel if the holder dies)."""
    path = cache.lock_path(settings.cache, relative_path)
    limit = settings.lock_seconds
    with open(path, "a+") as handle:
        deadline = time.monotonic() + limit
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DownloadError(
                        f"another edgezoo process has been fetching {relative_path} for more than {limit:g} s (it holds the lock "
                        f"{path}); gave up waiting ({limits.LOCK_TIMEOUT.env}). Try again when it is done."
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch_archive(remote: Remote, module_dir: Path, settings: DownloadSettings, what: str) -> Path:
    """A .tar.gz fetched like a file, checked, then extracted (safely) into `module_dir`, atomically. The extracted
    files' sha256 are recorded, and checked on every use: a module changed since it was extracted is fetched again."""
    with _download_lock(settings, remote.relative_path):
        if module_dir.is_dir() and any(module_dir.iterdir()):
            if cache.manifest_matches(settings.cache, remote.relative_path, module_dir):
                return module_dir  # intact (or fetched by another process while this one waited)
            shutil.rmtree(module_dir)  # changed since it was extracted: fetch it again
        return _fetch_archive(remote, module_dir, settings, what)


def _fetch_archive(remote: Remote, module_dir: Path, settings: DownloadSettings, what: str) -> Path:
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
            if module_dir.exists():
                shutil.rmtree(module_dir)  # an empty leftover folder
            cache.record_manifest(settings.cache, remote.relative_path, staging)
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
        except TimeoutError as exc:
            raise DownloadError(
                f"the download of {where} stalled: no data for {settings.stall_seconds:g} s after {received:,} bytes (the stall "
                f"timeout, {limits.DOWNLOAD_TIMEOUT.env}); nothing was kept. Try again, or use a mirror."
            ) from exc
        except (http.client.IncompleteRead, http.client.HTTPException, OSError) as exc:
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
        response = urllib.request.urlopen(urllib.request.Request(where, headers={"User-Agent": "edgezoo"}), timeout=settings.stall_seconds)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:  # urllib gives up after 10 redirects, or at once on a redirect back to a URL it saw
            raise DownloadError(f"cannot download {where}: the server redirects in a loop (HTTP {exc.code}: {exc.reason}).{hint}") from exc
        raise DownloadError(f"cannot download {where}: HTTP {exc.code} {exc.reason}.{hint}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise DownloadError(
                f"cannot download {where}: the server did not answer within {settings.stall_seconds:g} s (the stall timeout, "
                f"{limits.DOWNLOAD_TIMEOUT.env}).{hint}"
            ) from exc
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
