"""The ``edgegan-runtime`` command: generate, bench, info, backends; typed errors become one line and exit 1."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

import edgegan_runtime as rt
from edgegan_runtime.cli import build_parser, main
from edgegan_runtime.png import encode_png

BENCH_KEYS = {"backend", "batch", "threads", "load_ms", "first_ms", "p50_us", "p90_us", "p99_us", "mean_us",
              "images_per_s", "peak_rss_mb", "bytes"}


def read_png(data: bytes) -> np.ndarray:
    """Decode what encode_png writes (8-bit, filter 0) with the stdlib, to check it independently."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        assert struct.unpack_from(">I", data, pos + 8 + n)[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + n
    w, h, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    c = {0: 1, 2: 3, 6: 4}[color]
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, 1 + w * c)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, c)


def test_png_roundtrip():
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(read_png(encode_png(img)), img)


def test_every_command_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {"generate", "translate", "bench", "info", "backends"}
    for name in commands:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "usage: edgegan-runtime " + name in capsys.readouterr().out


@pytest.mark.tflite
def test_generate_writes_grid(tmp_path, tflite_model, capsys):
    out = tmp_path / "grid.png"
    assert main(["generate", str(tflite_model), "-n", "16", "--seed", "2", "-o", str(out)]) == 0
    img = read_png(out.read_bytes())
    assert img.shape == (4 * 34 + 2, 4 * 34 + 2, 1)
    first = rt.load(tflite_model).generate(16, seed=2)[0]
    assert np.array_equal(img[2:34, 2:34], first)
    assert "wrote" in capsys.readouterr().out
    from edgegan_runtime.fileio import FILE_MODE

    assert out.stat().st_mode & 0o777 == FILE_MODE  # the house's file mode, not mkstemp's 0600 (issue #8)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.onnx
def test_bench_json(onnx_model, capsys):
    assert main(["bench", str(onnx_model), "--batch", "4", "--threads", "1", "--json", "--runs", "200"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert BENCH_KEYS <= set(r)
    assert r["backend"] == "onnxruntime" and r["batch"] == 4 and r["threads"] == 1 and r["runs"] == 200
    assert r["p50_us"] <= r["p90_us"] <= r["p99_us"] and r["images_per_s"] > 0 and r["peak_rss_mb"] > 0
    assert r["bytes"] == onnx_model.stat().st_size


@pytest.mark.tflite
def test_bench_text_and_default_runs(tflite_model, capsys):
    assert main(["bench", str(tflite_model)]) == 0
    out = capsys.readouterr().out
    for word in ("load", "first call", "warm-up", "p50", "p99", "images/s", "peak RSS", "versions"):
        assert word in out
    runs = int(out.split(" calls\n")[0].rsplit("over ", 1)[1])
    assert runs >= 200


@pytest.mark.tflite
def test_info(tflite_model, capsys):
    assert main(["info", str(tflite_model)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["batch_sizes"] == [1, 64] and info["latent_dim"] == 100 and info["output_shape"] == [1, 32, 32]


def test_backends_command(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime" in out and "litert" in out and "tflite-runtime" in out


def test_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 100)
    assert main(["generate", str(bad), "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgegan-runtime: error: ") and str(bad) in err and err.count("\n") == 1
    assert main(["bench", str(tmp_path / "missing.onnx")]) == 1
    assert "no such model file" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


PI5 = """processor\t: 0
BogoMIPS\t: 108.00
CPU implementer\t: 0x41
CPU part\t: 0xd0b
processor\t: 1
CPU implementer\t: 0x41
CPU part\t: 0xd0b

Revision\t: d04170
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""
PHONE = "".join(f"processor\t: {i}\nCPU implementer\t: 0x41\nCPU part\t: {p}\n"
                for i, p in enumerate(["0xd05"] * 4 + ["0xd41"] * 3 + ["0xd44"])) + "Hardware\t: Qualcomm SM8350\n"


def test_cpu_name_on_arm_boards_and_phones():
    from edgegan_runtime.probe import cpu_name

    # aarch64 Linux prints no "model name": the board and its cores come from Model/Hardware and part numbers
    assert cpu_name(PI5) == "Raspberry Pi 5 Model B Rev 1.0 (2x Cortex-A76)"
    assert cpu_name(PHONE) == "Qualcomm SM8350 (4x Cortex-A55 + 3x Cortex-A78 + 1x Cortex-X1)"
    assert cpu_name("model name\t: AMD EPYC 7B13\nflags\t: avx2\n") == "AMD EPYC 7B13"
    assert cpu_name("CPU implementer\t: 0x61\nCPU part\t: 0x022\n") == "1x part 0x61:0x022"


@pytest.mark.parametrize("args", [["bench", "m.onnx", "--js"], ["generate", "m.onnx", "-o", "x.png", "--se", "1"],
                                  ["info", "m.onnx", "--back", "litert"]])
def test_abbreviated_options_are_refused(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
