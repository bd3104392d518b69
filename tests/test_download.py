"""The real download path (zoo/download.py) against a web server on 127.0.0.1: cache layout, checks,
atomicity, progress, mirrors (URL and folder) and offline mode. No test touches the internet."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from tests.loopback_server import loopback  # noqa: F401  (fixture)

from edgezoo.errors import ChecksumError, DownloadError, UnsafeModelError
from edgezoo.zoo import LoadOptions
from edgezoo.zoo.cache import hub_module_dir
from edgezoo.zoo.download import DownloadSettings, Remote, fetch_archive, fetch_file

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, so progress has several steps


def _leftovers(cache: Path) -> list[Path]:
    """Files in the cache other than finished ones: partial downloads and staging folders."""
    partial = cache / ".partial"
    return sorted(partial.rglob("*")) if partial.exists() else []


def test_download_lands_in_the_cache_verified_with_progress_and_is_reused(loopback, tmp_path):
    url = loopback.serve("weights/model.h5", PAYLOAD)
    seen = []
    settings = DownloadSettings(cache=tmp_path, progress=lambda name, done, total: seen.append((name, done, total)))
    remote = Remote.for_url(url, hashlib.sha256(PAYLOAD).hexdigest())

    cached = fetch_file(remote, settings)

    host = url.split("/")[2]
    assert cached.path == tmp_path / "files" / host / "weights" / "model.h5"
    assert cached.path.read_bytes() == PAYLOAD
    assert cached.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert "sha256 matches" in cached.verification
    assert seen[0] == ("model.h5", 0, len(PAYLOAD)) and seen[-1] == ("model.h5", len(PAYLOAD), len(PAYLOAD))
    assert [done for _, done, _ in seen] == sorted(done for _, done, _ in seen) and len(seen) > 3
    assert _leftovers(tmp_path) == []

    fetch_file(remote, settings)  # cached and still matching: no second request
    assert loopback.requests == ["/weights/model.h5"]


def test_md5_published_hashes_are_checked_too(loopback, tmp_path):
    url = loopback.serve("a.h5", PAYLOAD)
    cached = fetch_file(Remote.for_url(url, hashlib.md5(PAYLOAD).hexdigest()), DownloadSettings(cache=tmp_path))
    assert "md5 matches" in cached.verification


def test_wrong_checksum_is_a_clear_error_and_leaves_nothing(loopback, tmp_path):
    url = loopback.serve("weights/model.h5", PAYLOAD)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ChecksumError) as caught:
        fetch_file(Remote.for_url(url, wrong, "the test"), DownloadSettings(cache=tmp_path))
    message = str(caught.value)
    assert wrong in message and hashlib.sha256(PAYLOAD).hexdigest() in message and "not kept" in message
    assert caught.value.exit_code == 2
    assert not list((tmp_path / "files").rglob("*.h5")) and _leftovers(tmp_path) == []


def test_truncated_download_is_an_error_and_leaves_nothing(loopback, tmp_path):
    url = loopback.serve("weights/model.h5", PAYLOAD, truncate=True)
    with pytest.raises(DownloadError, match=r"truncated|broke off"):
        fetch_file(Remote.for_url(url), DownloadSettings(cache=tmp_path))
    assert not list((tmp_path / "files").rglob("*.h5")) and _leftovers(tmp_path) == []


def test_interrupted_download_leaves_nothing(loopback, tmp_path):
    url = loopback.serve("big.bin", PAYLOAD)

    def interrupt(name, done, total):
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch_file(Remote.for_url(url), DownloadSettings(cache=tmp_path, progress=interrupt))
    assert not (tmp_path / "files").exists() or not list((tmp_path / "files").rglob("big.bin"))
    assert _leftovers(tmp_path) == []


def test_a_damaged_cached_copy_is_fetched_again(loopback, tmp_path):
    url = loopback.serve("m.h5", PAYLOAD)
    remote = Remote.for_url(url, hashlib.sha256(PAYLOAD).hexdigest())
    cached = fetch_file(remote, DownloadSettings(cache=tmp_path))
    cached.path.write_bytes(b"bit rot")
    assert fetch_file(remote, DownloadSettings(cache=tmp_path)).path.read_bytes() == PAYLOAD
    assert len(loopback.requests) == 2


def test_offline_never_connects_and_says_where_to_place_the_file(loopback, tmp_path):
    url = loopback.serve("weights/model.h5", PAYLOAD)
    remote = Remote.for_url(url)
    with pytest.raises(DownloadError) as caught:
        fetch_file(remote, DownloadSettings(cache=tmp_path, offline=True))
    target = tmp_path / "files" / remote.relative_path
    assert "offline" in str(caught.value) and str(target) in str(caught.value) and url in str(caught.value)
    assert loopback.requests == []

    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)  # the user follows the message
    assert fetch_file(remote, DownloadSettings(cache=tmp_path, offline=True)).path == target
    assert loopback.requests == []


def test_url_mirror_replaces_the_origin(loopback, tmp_path):
    origin = "https://weights.example.invalid/models/v1/model.h5"  # never contacted: .invalid does not resolve
    loopback.serve("mirror/weights.example.invalid/models/v1/model.h5", PAYLOAD)
    settings = DownloadSettings(cache=tmp_path, mirror=loopback.url + "/mirror/")
    cached = fetch_file(Remote.for_url(origin, hashlib.sha256(PAYLOAD).hexdigest()), settings)
    assert cached.path.read_bytes() == PAYLOAD and cached.origin == origin
    assert loopback.requests == ["/mirror/weights.example.invalid/models/v1/model.h5"]


def test_mirror_missing_the_file_says_what_to_put_there(loopback, tmp_path):
    origin = "https://weights.example.invalid/models/v1/model.h5"
    with pytest.raises(DownloadError) as caught:
        fetch_file(Remote.for_url(origin), DownloadSettings(cache=tmp_path, mirror=loopback.url))
    assert "HTTP 404" in str(caught.value) and "weights.example.invalid/models/v1/model.h5" in str(caught.value)


def test_folder_mirror_works_offline(tmp_path):
    mirror = tmp_path / "mirror"
    origin = "https://weights.example.invalid/models/v1/model.h5"
    (mirror / "weights.example.invalid/models/v1").mkdir(parents=True)
    (mirror / "weights.example.invalid/models/v1/model.h5").write_bytes(PAYLOAD)
    settings = DownloadSettings(cache=tmp_path / "cache", offline=True, mirror=str(mirror))
    assert fetch_file(Remote.for_url(origin), settings).path.read_bytes() == PAYLOAD


def test_settings_come_from_the_environment_unless_given(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEZOO_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setenv("EDGEZOO_MIRROR", "http://127.0.0.1:9/mirror")
    monkeypatch.setenv("EDGEZOO_OFFLINE", "1")
    settings = DownloadSettings.from_options(LoadOptions())
    assert settings.cache == (tmp_path / "env-cache").resolve() and settings.offline and settings.mirror == "http://127.0.0.1:9/mirror"
    explicit = DownloadSettings.from_options(LoadOptions(cache_dir=tmp_path / "flag", mirror=str(tmp_path)))
    assert explicit.cache == (tmp_path / "flag").resolve() and explicit.mirror == str(tmp_path)


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_archive_is_fetched_checked_and_extracted_atomically(loopback, tmp_path):
    archive = _tar_gz({"saved_model.pb": b"graph", "variables/variables.index": b"index"})
    url = loopback.serve("models/tiny/1.tar.gz", archive)
    module_dir = hub_module_dir(tmp_path, url)
    remote = Remote.for_url(url, hashlib.sha256(archive).hexdigest())
    assert fetch_archive(remote, module_dir, DownloadSettings(cache=tmp_path), "tiny") == module_dir
    assert (module_dir / "variables/variables.index").read_bytes() == b"index"
    assert _leftovers(tmp_path) == []

    broken_url = loopback.serve("models/tiny/2.tar.gz", archive, truncate=True)
    with pytest.raises(DownloadError):
        fetch_archive(Remote.for_url(broken_url), hub_module_dir(tmp_path, broken_url), DownloadSettings(cache=tmp_path), "tiny 2")
    assert not hub_module_dir(tmp_path, broken_url).exists() and _leftovers(tmp_path) == []


def test_archive_with_path_traversal_is_refused_before_anything_is_written(loopback, tmp_path):
    url = loopback.serve("evil.tar.gz", _tar_gz({"saved_model.pb": b"x", "../../escaped.txt": b"gotcha"}))
    module_dir = hub_module_dir(tmp_path / "cache", url)
    with pytest.raises(UnsafeModelError, match=r"\.\./\.\./escaped\.txt"):
        fetch_archive(Remote.for_url(url), module_dir, DownloadSettings(cache=tmp_path / "cache"), "evil")
    assert not list(tmp_path.rglob("escaped.txt")) and not module_dir.exists()
    assert _leftovers(tmp_path / "cache") == []
