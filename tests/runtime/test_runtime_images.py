"""Issue 21, the runtime side: image-to-image files through ``edgegan-runtime`` — the PNG reader, the
image contract checked at load (a file whose contract disagrees with its tensors is refused), and the
command line's ``translate``, ``info``, ``bench`` and ``generate`` on image and latent files, each
refusal one line with its exit code and nothing written.

The files are the session fixtures ``i2i_run`` / ``i2i_export`` (tests/conftest.py): a mobile_i2i sr2x
student (16x16 -> 32x32 RGB) exported to ONNX (NCHW, any size) and TFLite (NHWC, 16x16)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import edgegan_runtime as rt
from edgegan_runtime import contract
from edgegan_runtime.cli import IMAGE_EXIT, main
from edgegan_runtime.png import decode_png, encode_png, read_png

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_litert.*")]


# ------------------------------------------------------------------------------------ PNG reader

def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, bits: int, color: int, rows: list[bytes], interlace: int = 0,
        extra: bytes = b"") -> bytes:
    """A PNG of already filtered ``rows`` (each starting with its filter byte)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bits, color, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


def filtered(img: np.ndarray, filters: list[int]) -> list[bytes]:
    """Rows of a uint8 (H, W, C) image, row y filtered with ``filters[y % len]`` (PNG spec 9.2, written from it)."""
    h, w, c = img.shape
    rows, prev = [], [0] * (w * c)
    for y in range(h):
        cur, f = [int(v) for v in img[y].reshape(-1)], filters[y % len(filters)]
        out = []
        for i, x in enumerate(cur):
            a = cur[i - c] if i >= c else 0
            b = prev[i]
            d = prev[i - c] if i >= c else 0
            p = a + b - d
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - d) else b if abs(p - b) <= abs(p - d) else d
            out.append((x - [0, a, b, (a + b) // 2, paeth][f]) % 256)
        rows.append(bytes([f, *out]))
        prev = cur
    return rows


@pytest.mark.parametrize("channels,color", [(1, 0), (2, 4), (3, 2), (4, 6)])
def test_png_every_filter_and_colour_type(channels, color):
    img = np.random.default_rng(channels).integers(0, 256, (9, 7, channels), dtype=np.uint8)
    got = decode_png(png(7, 9, 8, color, filtered(img, [0, 1, 2, 3, 4])))
    assert got.shape == (9, 7, channels) and np.array_equal(got, img)
    assert np.array_equal(decode_png(encode_png(img if channels != 2 else img[..., :1])),
                          img if channels != 2 else img[..., :1])


def test_png_palette_transparency_and_low_bit_grey():
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    idx = np.array([[0, 1, 2, 1], [2, 2, 0, 0]], np.uint8)
    plte, trns = chunk(b"PLTE", palette.tobytes()), chunk(b"tRNS", bytes([255, 128]))
    rows = [bytes([0, *r]) for r in idx]
    assert np.array_equal(decode_png(png(4, 2, 8, 3, rows, extra=plte)), palette[idx])
    rgba = decode_png(png(4, 2, 8, 3, rows, extra=plte + trns))
    assert np.array_equal(rgba[..., 3], np.array([[255, 128, 255, 128], [255, 255, 255, 255]]))
    # 2-bit grey: levels 0..3 scaled to 0, 85, 170, 255; 5 pixels in 2 bytes, the rest of the row padding
    levels = [0, 1, 2, 3, 1]
    packed = int("".join(f"{v:02b}" for v in levels).ljust(16, "0"), 2).to_bytes(2, "big")
    got = decode_png(png(5, 1, 2, 0, [b"\0" + packed]))
    assert got[0, :, 0].tolist() == [0, 85, 170, 255, 85]


def test_png_against_pillow():
    Image = pytest.importorskip("PIL.Image")
    import io

    base = np.cumsum(np.random.default_rng(0).integers(0, 9, (33, 41, 4)), axis=1).astype(np.uint8)
    for mode, arr in (("L", base[..., 0]), ("LA", base[..., :2]), ("RGB", base[..., :3]), ("RGBA", base)):
        b = io.BytesIO()
        Image.fromarray(arr, mode).save(b, "PNG")
        got = decode_png(b.getvalue())
        assert np.array_equal(got, arr.reshape(got.shape)), mode
    b = io.BytesIO()
    q = Image.fromarray(base[..., :3], "RGB").quantize(colors=16)
    q.save(b, "PNG", bits=4)
    assert np.array_equal(decode_png(b.getvalue()), np.asarray(q.convert("RGB")))


BAD_PNGS = {
    "not a PNG": (b"GIF89a" + b"\0" * 40, "not a PNG file"),
    "16-bit": (png(2, 2, 16, 2, [b"\0" + b"\0" * 12] * 2), "16-bit PNG"),
    "interlaced": (png(2, 2, 8, 2, [b"\0" + b"\0" * 6] * 2, interlace=1), "interlaced PNG"),
    "a bad CRC": (png(2, 2, 8, 0, [b"\0\0\0"] * 2)[:-5] + b"\0\0\0\0\0", "fails its CRC"),
    "truncated": (png(2, 2, 8, 0, [b"\0\0\0"] * 2)[:40], "truncated PNG"),
    "a 20000x20000 header": (png(20000, 20000, 8, 0, [b"\0" * 64]), "too large to decode safely"),
    "short image data": (png(4, 4, 8, 0, [b"\0" * 5] * 2), "corrupt PNG"),
    "filter type 7": (png(2, 1, 8, 0, [b"\x07\0\0"]), "filter type 7"),
}


@pytest.mark.parametrize("name", list(BAD_PNGS))
def test_bad_pngs_are_one_image_error(name):
    data, pattern = BAD_PNGS[name]
    with pytest.raises(rt.ImageError, match=pattern) as e:
        decode_png(data, "x.png")
    assert "\n" not in str(e.value) and str(e.value).startswith("x.png: ")


# ------------------------------------------------------------------------ the contract at load

def _image_contract(**changes) -> dict:
    entry = contract.image_input_entry(channels=3, size=(16, 16), multiple=1, task="sr2x", layout="NHWC", dynamic=False)
    c = contract.make_image_contract(input=entry, out_channels=3, scale=2, batch_sizes=[1], identity={})
    for path, value in changes.items():
        node = c
        *head, last = path.split(".")
        for k in head:
            node = node[k]
        node[last] = value
    return c


LIES = {
    "input.channels": 4, "output.scale": 3, "input.size": [16, 8], "input.multiple": 3, "input.layout": "NCHW",
    "output.layout": "NCHW", "input.range": [0.0, 1.0], "input.shape": [None, 16, 16, 4],
    "input.pixels": {"name": "u8-div-255", "version": 1}, "pixels": {"name": "other", "version": 1},
    "latent": {"dim": 100}, "output.channels": 1, "batch_sizes": [1, 64],
}


def test_check_image_accepts_the_truth_and_refuses_every_lie():
    dims = ((16, 16, 3), (32, 32, 3))
    got = contract.check_image(_image_contract(), name="f", input_dims=dims[0], output_dims=dims[1], batch_sizes=(1,))
    assert got == {"layout": "NHWC", "channels": 3, "out_channels": 3, "height": 16, "width": 16, "scale": 2,
                   "multiple": 1, "size": (16, 16), "task": "sr2x"}
    for path, value in LIES.items():
        with pytest.raises(rt.ModelFileError) as e:
            contract.check_image(_image_contract(**{path: value}), name="f", input_dims=dims[0],
                                 output_dims=dims[1], batch_sizes=(1,))
        assert str(e.value).startswith("f: ") and "\n" not in str(e.value), path
    with pytest.raises(rt.ModelFileError, match="input is of kind 'audio'"):
        contract.is_image({"schema": contract.SCHEMA, "input": {"kind": "audio"}}, "f")


@pytest.mark.onnx
@pytest.mark.tflite
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_a_file_whose_contract_lies_is_refused_at_load(i2i_run, i2i_export, tmp_path, fmt):
    src = i2i_run / i2i_export(fmt)["file"]
    path = tmp_path / src.name

    def rewrite(edit) -> None:
        if fmt == "onnx":
            import onnx

            m = onnx.load(str(src))
            for p in m.metadata_props:
                if p.key == contract.METADATA_NAME:
                    c = json.loads(p.value)
                    edit(c)
                    p.value = json.dumps(c)
            onnx.save(m, str(path))
        else:
            from edgegan.export.tflite_metadata import add_metadata
            from edgegan_runtime.tflite_check import verify_tflite_metadata

            c = json.loads(verify_tflite_metadata(src.read_bytes(), "f")[1][contract.METADATA_NAME])
            edit(c)
            path.write_bytes(add_metadata(src.read_bytes(), {contract.METADATA_NAME: json.dumps(c)}))

    rewrite(lambda c: None)
    assert rt.load(path).input_kind == "image"  # the rewrite itself keeps a good file good
    for edit, pattern in ((lambda c: c["input"].update(channels=1), "channels"),
                          (lambda c: c["output"].update(scale=4), "scale"),
                          (lambda c: c.pop("input"), "expected input \\(B, latent_dim\\)|maps"),
                          (lambda c: c["input"].update(kind="video"), "kind 'video'")):
        rewrite(edit)
        with pytest.raises(rt.ModelFileError, match=pattern):
            rt.load(path)


@pytest.mark.onnx
def test_load_through_the_manifest(i2i_run, i2i_export):
    i2i_export("onnx")
    with rt.load(i2i_run, export="onnx:fp32") as g:
        assert g.input_kind == "image" and g.translate(np.zeros((8, 6, 3), np.uint8)).shape == (16, 12, 3)


# ------------------------------------------------------------------------------ the command line

def run_cli(capsys, *args) -> tuple[int, str, list[str]]:
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def pixels_png(path: Path, shape=(16, 16, 3), seed: int = 0) -> np.ndarray:
    img = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    path.write_bytes(encode_png(img))
    return img


@pytest.mark.onnx
def test_translate_writes_what_the_library_returns(i2i_run, i2i_export, tmp_path, capsys):
    model = i2i_run / i2i_export("onnx")["file"]
    a, b = pixels_png(tmp_path / "a.png"), pixels_png(tmp_path / "b.png", (12, 20, 3), 1)
    code, out, err = run_cli(capsys, "translate", model, tmp_path / "a.png", "-o", tmp_path / "big.png")
    assert code == 0, err
    with rt.load(model) as g:
        assert np.array_equal(read_png(tmp_path / "big.png"), g.translate(a))
        (tmp_path / "out").mkdir()
        code, out, err = run_cli(capsys, "translate", model, tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "out")
        assert code == 0, err
        assert np.array_equal(read_png(tmp_path / "out" / "b.png"), g.translate(b))  # its own size: 24x40
        assert read_png(tmp_path / "out" / "b.png").shape == (24, 40, 3)
    # RGBA whose alpha is all 255 is the RGB image (nothing else is converted)
    pixels_png(tmp_path / "rgba.png", (16, 16, 4))
    rgba = read_png(tmp_path / "rgba.png")
    rgba[..., 3] = 255
    (tmp_path / "rgba.png").write_bytes(encode_png(rgba))
    assert run_cli(capsys, "translate", model, tmp_path / "rgba.png", "-o", tmp_path / "c.png")[0] == 0


@pytest.mark.onnx
@pytest.mark.tflite
def test_translate_refusals_are_one_line_and_write_nothing(i2i_run, i2i_export, onnx_model, tmp_path, capsys):
    onnx_file, tflite_file = i2i_run / i2i_export("onnx")["file"], i2i_run / i2i_export("tflite")["file"]
    pixels_png(tmp_path / "a.png")
    pixels_png(tmp_path / "a20.png", (20, 20, 3))
    pixels_png(tmp_path / "grey.png", (16, 16, 1))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (tmp_path / "translucent.png").write_bytes(encode_png(np.full((16, 16, 4), 7, np.uint8)))
    cases = [
        (("translate", tflite_file, tmp_path / "a20.png", "-o", tmp_path / "o.png"), IMAGE_EXIT,
         "takes 16x16 images .* got 20x20"),
        (("translate", onnx_file, tmp_path / "grey.png", "-o", tmp_path / "o.png"), IMAGE_EXIT,
         r"3 channels \(RGB\); got 1"),
        (("translate", onnx_file, tmp_path / "translucent.png", "-o", tmp_path / "o.png"), IMAGE_EXIT,
         r"3 channels \(RGB\); got 4"),
        (("translate", onnx_file, tmp_path / "bad.png", "-o", tmp_path / "o.png"), IMAGE_EXIT, "bad.png: .*PNG"),
        (("translate", onnx_file, tmp_path / "missing.png", "-o", tmp_path / "o.png"), IMAGE_EXIT, "no such image file"),
        (("translate", onnx_model, tmp_path / "a.png", "-o", tmp_path / "o.png"), IMAGE_EXIT,
         "generates images from latents; use `edgegan-runtime generate`"),
        (("generate", onnx_file, "-o", tmp_path / "o.png"), IMAGE_EXIT, "translates images; use `edgegan-runtime translate"),
        (("translate", onnx_file, tmp_path / "a.png", tmp_path / "a20.png", "-o", tmp_path / "o.png"), 2,
         "2 images need -o to name an existing folder"),
        (("translate", onnx_file, tmp_path / "a.png", "-o", tmp_path), 1, "would overwrite its input image"),
        (("bench", tflite_file, "--input-size", "15x16", "--runs", "1"), IMAGE_EXIT, "got 15x16"),
    ]
    import re

    for args, code, pattern in cases:
        before = sorted(tmp_path.rglob("*"))
        got, _, err = run_cli(capsys, *args)
        assert got == code, (args, err)
        assert re.search(pattern, err[-1]) and "Traceback" not in "".join(err), (args, err)
        assert sorted(tmp_path.rglob("*")) == before, args


@pytest.mark.onnx
@pytest.mark.tflite
def test_info_and_bench_on_image_files(i2i_run, i2i_export, capsys):
    for fmt, size in (("onnx", [3, None, None]), ("tflite", [3, 16, 16])):
        model = i2i_run / i2i_export(fmt)["file"]
        code, out, err = run_cli(capsys, "info", model)
        assert code == 0, err
        info = json.loads(out)
        assert info["input_kind"] == "image" and info["latent_dim"] is None and info["input_shape"] == size
        assert (info["scale"], info["multiple"], info["size"], info["task"]) == (2, 1, [16, 16], "sr2x")
        code, out, err = run_cli(capsys, "bench", model, "--json", "--runs", "5", "--batch", "2")
        assert code == 0, err
        r = json.loads(out)
        assert r["input_kind"] == "image" and r["input_shape"] == [3, 16, 16] and r["output_shape"] == [3, 32, 32]
        assert r["runs"] == 5 and r["torch_imported"] in (True, False)
    code, out, err = run_cli(capsys, "bench", i2i_run / i2i_export("onnx")["file"], "--json", "--runs", "3",
                             "--input-size", "24x8")
    assert code == 0 and json.loads(out)["output_shape"] == [3, 48, 16], err
