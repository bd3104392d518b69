"""Downloads and the cache under faults, against the web server on 127.0.0.1 (tests/loopback_server.py): a
connection dropped mid-body, a stalled server (the stall timeout, set to 2 s here), HTTP errors and a redirect
loop, a wrong Content-Length, two processes fetching one file at once (a lock: one downloads, the other waits and
uses the cached copy), and a cached copy damaged after download, caught by the sha256 recorded for it."""

from __future__ import annotations

import fcntl
import hashlib
import json
import subprocess
import sys
import time

import pytest
from tests.conftest import REPO
from tests.loopback_server import loopback  # noqa: F401  (fixture)

from edgezoo.errors import ChecksumError, DownloadError
from edgezoo.zoo import cache
from edgezoo.zoo.download import DownloadSettings, Remote, fetch_file

PAYLOAD = bytes(range(256)) * 2048  # 512 KiB


def _nothing_kept(root):
    files = root / "files"
    partial = root / ".partial"
    return (not files.exists() or not [p for p in files.rglob("*") if p.is_file()]) and (not partial.exists() or not list(partial.iterdir()))


def test_connection_dropped_mid_body(loopback, tmp_path):
    url = loopback.serve("drop.bin", PAYLOAD, reset=True)
    with pytest.raises(DownloadError, match=r"broke off|truncated") as caught:
        fetch_file(Remote.for_url(url), DownloadSettings(cache=tmp_path))
    assert "nothing was kept" in str(caught.value) and _nothing_kept(tmp_path)


def test_stalled_server_times_out_at_the_stated_limit(loopback, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEZOO_DOWNLOAD_TIMEOUT", "2")
    url = loopback.serve("stall.bin", PAYLOAD, stall=30)
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"stalled: no data for 2 s .*EDGEZOO_DOWNLOAD_TIMEOUT"):
        fetch_file(Remote.for_url(url), DownloadSettings(cache=tmp_path))
    assert time.monotonic() - start < 10 and _nothing_kept(tmp_path)


@pytest.mark.parametrize("fault, message", [
    ({"status": 500}, "HTTP 500"), ({"status": 404}, "HTTP 404"), ({"redirect": "/loop.bin"}, "redirects in a loop"),
])
def test_http_errors_and_redirect_loops(loopback, tmp_path, fault, message):
    url = loopback.serve("loop.bin", PAYLOAD, **fault)
    with pytest.raises(DownloadError, match=message):
        fetch_file(Remote.for_url(url), DownloadSettings(cache=tmp_path))
    assert _nothing_kept(tmp_path)


def test_content_length_longer_than_the_body(loopback, tmp_path):
    url = loopback.serve("long.bin", PAYLOAD[:1000], length=5000)
    with pytest.raises(DownloadError, match=r"1,000 of 5,000 bytes"):
        fetch_file(Remote.for_url(url), DownloadSettings(cache=tmp_path))
    assert _nothing_kept(tmp_path)


def test_content_length_shorter_than_the_body_is_caught_by_the_hash(loopback, tmp_path):
    url = loopback.serve("short.bin", PAYLOAD, length=1000)  # the client reads 1,000 bytes: only a hash can tell
    with pytest.raises(ChecksumError, match="failed its sha256 check"):
        fetch_file(Remote.for_url(url, hashlib.sha256(PAYLOAD).hexdigest()), DownloadSettings(cache=tmp_path))
    assert _nothing_kept(tmp_path)


FETCH = """
import json, sys
from pathlib import Path
from edgezoo.zoo.download import DownloadSettings, Remote, fetch_file
got = fetch_file(Remote.for_url(sys.argv[1]), DownloadSettings(cache=Path(sys.argv[2])))
print(json.dumps({"path": str(got.path), "sha256": got.sha256}))
"""


def test_two_processes_fetching_one_file_download_it_once(loopback, tmp_path):
    url = loopback.serve("shared.bin", PAYLOAD, chunk_delay=0.15)  # 8 pieces: about 1.2 s of downloading
    procs = [subprocess.Popen([sys.executable, "-c", FETCH, url, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert loopback.requests == ["/shared.bin"]  # one download; the other process waited for it, then used the cache
    assert results[0] == results[1] and results[0]["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()


def test_a_held_lock_is_waited_for_up_to_the_lock_timeout(loopback, tmp_path):
    url = loopback.serve("locked.bin", PAYLOAD)
    remote = Remote.for_url(url)
    with open(cache.lock_path(tmp_path, remote.relative_path), "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another process fetching the same file would
        with pytest.raises(DownloadError, match=r"another edgezoo process .* more than 0.5 s .*EDGEZOO_LOCK_TIMEOUT"):
            fetch_file(remote, DownloadSettings(cache=tmp_path, lock_timeout=0.5))
    assert loopback.requests == []
    assert fetch_file(remote, DownloadSettings(cache=tmp_path, lock_timeout=0.5)).path.read_bytes() == PAYLOAD


def test_a_cached_copy_damaged_after_download_is_caught_by_its_recorded_hash(loopback, tmp_path):
    url = loopback.serve("unhashed.bin", PAYLOAD)  # the publisher gives no hash: only the recorded one can tell
    remote = Remote.for_url(url)
    cached = fetch_file(remote, DownloadSettings(cache=tmp_path))
    assert cache.recorded_sha256(tmp_path, remote.relative_path) == hashlib.sha256(PAYLOAD).hexdigest()
    damaged = bytearray(cached.path.read_bytes())
    damaged[1000] ^= 0xFF  # one flipped byte: same size, same name
    cached.path.write_bytes(bytes(damaged))
    assert fetch_file(remote, DownloadSettings(cache=tmp_path)).path.read_bytes() == PAYLOAD
    assert loopback.requests == ["/unhashed.bin", "/unhashed.bin"]  # fetched again
    fetch_file(remote, DownloadSettings(cache=tmp_path))
    assert len(loopback.requests) == 2  # intact now: used as it is


def test_an_extracted_module_changed_after_extraction_is_fetched_again(loopback, tmp_path):
    import io
    import tarfile

    from edgezoo.zoo.cache import hub_module_dir
    from edgezoo.zoo.download import fetch_archive

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in {"saved_model.pb": b"graph", "variables/variables.index": b"index"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    url = loopback.serve("modules/m/1.tar.gz", buffer.getvalue())
    module_dir = hub_module_dir(tmp_path, url)
    settings = DownloadSettings(cache=tmp_path)
    fetch_archive(Remote.for_url(url), module_dir, settings, "m")
    fetch_archive(Remote.for_url(url), module_dir, settings, "m")
    assert len(loopback.requests) == 1  # intact: used as extracted
    (module_dir / "variables" / "variables.index").write_bytes(b"tampered")
    fetch_archive(Remote.for_url(url), module_dir, settings, "m")
    assert len(loopback.requests) == 2 and (module_dir / "variables" / "variables.index").read_bytes() == b"index"
