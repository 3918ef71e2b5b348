"""fileio.read_regular: regular files only, never blocking, with a size cap (issue 14, "hangs and
unbounded reads"). Each bad file is made here; before read_regular a FIFO blocked ``open`` forever
and ``/dev/zero`` as a manifest was read without limit."""

from __future__ import annotations

import os
import socket
import threading

import pytest

import edgegan_runtime as rt
from edgegan_runtime.fileio import read_regular


def _in_thread(fn, timeout: float = 20.0):
    """fn() in a daemon thread; the test fails (instead of hanging) if it has not returned in time."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "blocked"
    return box


def test_reads_a_regular_file(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"abc")
    assert read_regular(p, 3, "file") == b"abc"
    assert read_regular(str(p), 100, "file") == b"abc"


def test_size_cap(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"abcd")
    with pytest.raises(rt.FileReadError, match=r"x.bin: manifest of 4 bytes is larger than the limit of 3 bytes"):
        read_regular(p, 3, "manifest")


def test_missing_and_directory(tmp_path):
    with pytest.raises(rt.FileReadError, match="no such model file"):
        read_regular(tmp_path / "nope", 10, "model file")
    with pytest.raises(rt.FileReadError, match="is a directory, not a regular file"):
        read_regular(tmp_path, 10, "model file")


@pytest.mark.parametrize("writer", [False, True])
def test_fifo_is_refused_without_blocking(tmp_path, writer):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    w = os.open(fifo, os.O_RDWR) if writer else None  # a writer that never writes nor closes
    try:
        box = _in_thread(lambda: read_regular(fifo, 1 << 20, "model file"))
    finally:
        if w is not None:
            os.close(w)
    assert isinstance(box.get("error"), rt.FileReadError), box
    assert "is a FIFO, not a regular file" in str(box["error"])


def test_socket_is_refused(tmp_path):
    path = tmp_path / "s"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(path))
        with pytest.raises(rt.FileReadError, match="not a regular file"):
            read_regular(path, 10, "model file")
    finally:
        s.close()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_device_is_refused():
    with pytest.raises(rt.FileReadError, match="/dev/zero: manifest is a character device"):
        read_regular("/dev/zero", 1 << 20, "manifest")


def test_custom_error_type(tmp_path):
    class MyError(Exception):
        pass

    with pytest.raises(MyError, match="no such dataset file"):
        read_regular(tmp_path / "nope", 10, "dataset file", error=MyError)


def test_fifo_and_dev_zero_through_load(tmp_path):
    """The loader and the manifest reader use it: a FIFO model or manifest, /dev/zero as manifest."""
    fifo = tmp_path / "g.tflite"
    os.mkfifo(fifo)
    box = _in_thread(lambda: rt.load(fifo))
    assert isinstance(box.get("error"), rt.ModelFileError) and "FIFO" in str(box["error"]), box
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "manifest.json")
    box = _in_thread(lambda: rt.load(run))
    assert isinstance(box.get("error"), rt.ManifestError) and "FIFO" in str(box["error"]), box
    link = tmp_path / "zero"
    link.mkdir()
    (link / "manifest.json").symlink_to("/dev/zero")
    box = _in_thread(lambda: rt.load(link))
    assert isinstance(box.get("error"), rt.ManifestError) and "character device" in str(box["error"]), box
