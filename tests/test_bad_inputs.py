"""Bad inputs, as a hostile or unlucky user makes them (issue 14): each is built here, run through the
`edgegan` command line on tiny real runs, and must end as one typed line on stderr with its exit code,
no traceback, and nothing left behind. README's "Bad inputs" table lists the same classes."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgegan.app.cli import main

REPO = Path(__file__).resolve().parents[1]
EXE = [sys.executable, "-c", "import sys; from edgegan.app.cli import main; sys.exit(main())"]
# Exit codes: the one mapping, EdgeganError.exit_code (edgegan/errors.py).
CONFIG, DATASET, CHECKPOINT, BENCH, OUTPUT, DIVERGED = 2, 3, 4, 7, 9, 10


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny teacher (with a resumable checkpoint) and a student distilled from it."""
    import torch

    from edgegan.distill import DistillConfig, distill
    from edgegan.train import TrainConfig, train_gan

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bad_inputs")
    try:
        train_gan(TrainConfig(dataset="digits", d=2, steps=4, batch_size=8, sample_every=0, checkpoint_every=2),
                  root / "t", progress=False)
        distill(DistillConfig(teacher=str(root / "t"), d=1, steps=2, batch_size=8, eval_samples=8), root / "s",
                progress=False)
    finally:
        torch.set_num_threads(threads)
    return root


def cli(capsys, *args) -> tuple[int, list[str]]:
    """Run the CLI in this process (one torch import for the whole file); (exit code, stderr lines)."""
    import torch

    threads = torch.get_num_threads()
    capsys.readouterr()
    try:
        code = main(["--threads", "1", *map(str, args)])
    finally:
        torch.set_num_threads(threads)
    return code, capsys.readouterr().err.strip().splitlines()


def one_line(lines: list[str], pattern: str) -> None:
    assert len(lines) == 1, lines
    assert pattern in lines[0], lines
    assert "Traceback" not in lines[0]


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_manifest(run: Path, fn) -> None:
    m = json.loads((run / "manifest.json").read_text())
    fn(m)
    (run / "manifest.json").write_text(json.dumps(m))


# ------------------------------------------------------------------------- builders of bad inputs
# Each takes (tmp_path, runs) and returns the command line; OUT stands for a fresh output path.

def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG whose header declares w x h pixels (a decompression bomb): IHDR, a tiny IDAT, IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def idx_overflow(tmp, runs):
    d = tmp / "mnist"
    d.mkdir()
    # 3 dimensions of 2**32-1: their product overflows numpy's int64 (and is far beyond the file).
    (d / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + struct.pack(">3I", *(2**32 - 1,) * 3) + b"\0" * 16)
    (d / "train-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01" + struct.pack(">I", 1) + b"\0")
    return ["train-teacher", "--dataset", "mnist", "--data-dir", d, "--d", "2", "--steps", "1", "--out", "OUT"]


def npz_zero_height(tmp, runs):
    np.savez(tmp / "x.npz", images=np.zeros((4, 0, 32, 3), np.uint8))
    return ["train-teacher", "--dataset", "folder", "--data-dir", tmp / "x.npz", "--d", "2", "--steps", "1",
            "--out", "OUT"]


def cifar_count_mismatch(tmp, runs):
    d = tmp / "cifar-10-batches-py"
    d.mkdir()
    batch = {b"data": np.zeros((3, 3072), np.uint8), b"labels": [1, 2]}
    for name in ("data_batch_1", "test_batch"):
        (d / name).write_bytes(pickle.dumps(batch))
    return ["train-teacher", "--dataset", "cifar10", "--data-dir", tmp, "--d", "2", "--steps", "1", "--out", "OUT"]


def png_bomb(tmp, runs):
    d = tmp / "imgs"
    d.mkdir()
    _png_header_only(d / "bomb.png", 20000, 20000)
    return ["train-teacher", "--dataset", "folder", "--data-dir", d, "--d", "2", "--steps", "1", "--out", "OUT"]


def dataset_fifo(tmp, runs):
    d = tmp / "mnist"
    d.mkdir()
    os.mkfifo(d / "train-images-idx3-ubyte")
    os.mkfifo(d / "train-labels-idx1-ubyte")
    return ["train-teacher", "--dataset", "mnist", "--data-dir", d, "--d", "2", "--steps", "1", "--out", "OUT"]


def out_is_file(tmp, runs):
    (tmp / "f").write_text("x")
    return ["train-teacher", "--dataset", "digits", "--d", "2", "--steps", "1", "--out", tmp / "f"]


def out_under_file(tmp, runs):
    (tmp / "f").write_text("x")
    return ["distill", "--teacher", runs / "t", "--steps", "1", "--out", tmp / "f" / "run"]


def export_out_under_file(tmp, runs):
    (tmp / "f").write_text("x")
    return ["export", runs / "s", "--format", "onnx", "--out", tmp / "f" / "x"]


def manifest_wrong_type(tmp, runs):
    r = copy_run(runs / "s", tmp / "s")
    edit_manifest(r, lambda m: m["model"]["weights"].update(bytes="many"))
    return ["info", r]


def manifest_exports_not_a_list(tmp, runs):
    r = copy_run(runs / "s", tmp / "s")
    edit_manifest(r, lambda m: m.update(exports={"file": "x.onnx"}))
    return ["export", r, "--format", "onnx"]


def manifest_deep_json(tmp, runs):
    r = tmp / "s"
    r.mkdir()
    (r / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    return ["info", r]


def manifest_fifo(tmp, runs):
    r = tmp / "s"
    r.mkdir()
    os.mkfifo(r / "manifest.json")
    return ["info", r]


def manifest_dev_zero(tmp, runs):
    r = tmp / "s"
    r.mkdir()
    (r / "manifest.json").symlink_to("/dev/zero")
    return ["info", r]


def manifest_huge_depth_factor(tmp, runs):
    r = copy_run(runs / "s", tmp / "s")
    edit_manifest(r, lambda m: m["model"]["args"].update(d=100_000))
    return ["export", r, "--format", "onnx"]


def safetensors_int_dtype(tmp, runs):
    import torch

    from edgegan.checkpoint import load_tensors, save_tensors
    from edgegan.manifest import sha256_file

    r = copy_run(runs / "s", tmp / "s")
    w = r / "generator.safetensors"
    t = load_tensors(w)
    save_tensors(w, {k: (v.to(torch.int32) if v.is_floating_point() else v) for k, v in t.items()})
    edit_manifest(r, lambda m: m["model"]["weights"].update(sha256=sha256_file(w), bytes=w.stat().st_size))
    return ["distill", "--teacher", r, "--steps", "1", "--out", "OUT"]


def corrupt_state_json(tmp, runs):
    r = copy_run(runs / "t", tmp / "t")
    (r / "manifest.json").unlink()
    (r / "state.json").write_text('{"step": 2, "sha256": ')
    return ["train-teacher", "--dataset", "digits", "--d", "2", "--steps", "8", "--batch-size", "8",
            "--sample-every", "0", "--checkpoint-every", "2", "--out", r, "--resume"]


def state_shape_mismatch(tmp, runs):
    """A checkpoint whose state.json matches the run but whose tensors come from another model size."""
    from edgegan.manifest import sha256_file
    from edgegan.train import TrainConfig, train_gan

    other = tmp / "other"
    train_gan(TrainConfig(dataset="digits", d=3, steps=2, batch_size=8, sample_every=0, checkpoint_every=0), other,
              progress=False)
    r = copy_run(runs / "t", tmp / "t")
    (r / "manifest.json").unlink()
    st = json.loads((r / "state.json").read_text())
    ost = json.loads((other / "state.json").read_text())
    shutil.copy(other / ost["tensors"], r / st["tensors"])
    st["sha256"][st["tensors"]] = sha256_file(r / st["tensors"])
    (r / "state.json").write_text(json.dumps(st))
    return ["train-teacher", "--dataset", "digits", "--d", "2", "--steps", "8", "--batch-size", "8",
            "--sample-every", "0", "--checkpoint-every", "2", "--out", r, "--resume"]


def teacher_fifo(tmp, runs):
    os.mkfifo(tmp / "teacher.onnx")
    return ["distill", "--teacher", tmp / "teacher.onnx", "--steps", "1", "--out", "OUT"]


def latent_dim_disagrees(tmp, runs):
    return ["distill", "--teacher", runs / "t", "--latent-dim", "7", "--steps", "1", "--out", "OUT"]


def nan_teacher(tmp, runs):
    return ["distill", "--teacher", "tests.factories:nan_teacher", "--steps", "2", "--out", "OUT"]


def demo_into_a_foreign_folder(tmp, runs):
    (tmp / "home").mkdir()
    (tmp / "home" / "thesis.tex").write_text("years of work")  # the demo must not delete a folder it did not make
    return ["demo", "--fast", "--out", tmp / "home"]


def bench_out_is_file(tmp, runs):
    (tmp / "f").write_text("x")
    return ["bench", runs / "s", "--samples", "4", "--out", tmp / "f"]


def manifest_field_missing(tmp, runs):
    r = copy_run(runs / "s", tmp / "s")
    edit_manifest(r, lambda m: m["distill"].pop("eval"))
    return ["info", r]


def device_results_fifo(tmp, runs):
    os.mkfifo(tmp / "device.json")
    return ["bench", runs / "s", "--samples", "4", "--device-results", tmp / "device.json", "--out", "OUT"]


TINY = ("--d", "2", "--steps", "2", "--batch-size", "8")  # so that, before the fix, a case ran fast and exited 0


def _opt(*args):
    def build(tmp, runs):
        return [a.replace("{t}", str(runs / "t")).replace("{s}", str(runs / "s")) if isinstance(a, str) else a
                for a in args]
    return build


BAD = {
    # name: (builder, exit code, text in the one line)
    "--seed 2**70": (_opt("train-teacher", "--dataset", "digits", *TINY, "--seed", str(2**70), "--out", "OUT"), CONFIG, "seed must be"),
    "--d 100000": (_opt("train-teacher", "--dataset", "digits", "--d", "100000", "--out", "OUT"), CONFIG, "d must be"),
    "--batch-size 10**9": (_opt("distill", "--teacher", "{t}", "--steps", "2", "--batch-size", str(10**9), "--out", "OUT"), CONFIG,
                           "batch-size must be"),
    "--lr inf": (_opt("train-teacher", "--dataset", "digits", *TINY, "--lr", "inf", "--out", "OUT"), CONFIG, "lr must be a finite number"),
    "--lam nan": (_opt("distill", "--teacher", "{t}", *TINY, "--loss", "joint", "--lam", "nan", "--out", "OUT"), CONFIG,
                  "lam must be a finite number"),
    "--lam inf": (_opt("distill", "--teacher", "{t}", *TINY, "--loss", "joint", "--lam", "inf", "--out", "OUT"), CONFIG,
                  "lam must be a finite number"),
    "bench --samples 10**12": (_opt("bench", "{s}", "--samples", str(10**12), "--out", "OUT"), CONFIG,
                               "samples must be"),
    "export --seed 2**70": (_opt("export", "{s}", "--format", "onnx", "--seed", str(2**70), "--out", "OUT"), CONFIG,
                            "seed must be"),
    "export --calibration-samples 10**12": (_opt("export", "{s}", "--format", "onnx", "--quantize", "int8",
                                                 "--calibration-samples", str(10**12), "--out", "OUT"), CONFIG,
                                            "calibration-samples must be"),
    "--out is a file": (out_is_file, OUTPUT, "--out is a file"),
    "bench --out is a file": (bench_out_is_file, OUTPUT, "--out is a file"),
    "demo --out a folder that is not a demo's": (demo_into_a_foreign_folder, CONFIG, "is not a demo folder"),
    "--out under a file": (out_under_file, OUTPUT, "is a file, not a directory"),
    "export -o under a file": (export_out_under_file, OUTPUT, "cannot create the folder"),
    "manifest field of the wrong type": (manifest_wrong_type, CHECKPOINT, "model.weights.bytes should be int"),
    "manifest field missing": (manifest_field_missing, CHECKPOINT, "distill.eval is missing"),
    "manifest exports not a list": (manifest_exports_not_a_list, CHECKPOINT, "exports should be list"),
    "manifest deeply nested JSON": (manifest_deep_json, CHECKPOINT, "nested too deeply"),
    "manifest is a FIFO": (manifest_fifo, CHECKPOINT, "is a FIFO, not a regular file"),
    "manifest is /dev/zero": (manifest_dev_zero, CHECKPOINT, "is a character device"),
    "manifest d=100000": (manifest_huge_depth_factor, CHECKPOINT, "d must be an integer"),
    "safetensors I32 for a float tensor": (safetensors_int_dtype, CHECKPOINT, "is int32, expected float32"),
    "corrupt state.json on --resume": (corrupt_state_json, CHECKPOINT, "corrupt resume state"),
    "state shape mismatch on --resume": (state_shape_mismatch, CHECKPOINT, "do not fit"),
    "IDX dimensions overflow": (idx_overflow, DATASET, "IDX declares shape"),
    "npz with zero-height images": (npz_zero_height, DATASET, "have no pixels"),
    "CIFAR image and label counts differ": (cifar_count_mismatch, DATASET, "holds 3 images but (2,) labels"),
    "20000x20000 PNG": (png_bomb, DATASET, "too large to decode safely"),
    "dataset file is a FIFO": (dataset_fifo, DATASET, "not a regular file"),
    "device-results file is a FIFO": (device_results_fifo, BENCH, "is a FIFO, not a regular file"),
    "teacher file is a FIFO": (teacher_fifo, CHECKPOINT, "not a regular file"),
    "--latent-dim disagrees with a run teacher": (latent_dim_disagrees, CHECKPOINT, "--latent-dim 7 but the teacher"),
    "teacher outputs NaN": (nan_teacher, CHECKPOINT, "NaN"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_one_typed_line_and_leaves_nothing(name, runs, tmp_path, capsys):
    build, code, pattern = BAD[name]
    out = tmp_path / "out"
    args = [str(out) if a == "OUT" else a for a in build(tmp_path, runs)]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p != out)
    got, lines = cli(capsys, *args)
    assert got == code, (got, lines)
    one_line(lines, pattern)
    assert not out.exists()
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p != out)
    assert [p for p in after if p not in before] == [], "left behind"
    assert [p for p in before if p not in after] == [], "removed what it did not make"


def test_an_unwritable_out_is_an_output_error(runs, tmp_path, capsys):
    if os.geteuid() == 0:  # root writes through permissions; sysfs refuses even root
        base = Path("/sys/edgegan-test")
        if not Path("/sys").is_dir():
            pytest.skip("no read-only location for root")
    else:
        base = tmp_path / "ro"
        base.mkdir()
        base.chmod(0o555)
    got, lines = cli(capsys, "distill", "--teacher", runs / "t", "--steps", "1", "--out", base / "run")
    assert got == OUTPUT, lines
    one_line(lines, "run")


def test_a_manifest_never_names_code_to_run(runs, tmp_path):
    """bench of a student whose manifest records `os:abort` as its module:factory teacher: nothing is
    imported or called (the process is not aborted); the user is asked to type --teacher."""
    r = copy_run(runs / "s", tmp_path / "s")
    edit_manifest(r, lambda m: m["distill"]["teacher"].update(kind="factory", spec="os:abort"))
    p = subprocess.run([*EXE, "bench", str(r), "--samples", "4", "--out", str(tmp_path / "b")], capture_output=True,
                       text=True, timeout=300, cwd=REPO)
    assert p.returncode == CHECKPOINT, p.stderr
    one_line(p.stderr.strip().splitlines(), "pass --teacher os:abort again")
    assert not (tmp_path / "b").exists()


def _fsize_limited(n: int, argv: list[str]) -> list[str]:
    """``argv`` run under a file-size limit of ``n`` bytes, set by a launcher that then execs it (not a
    preexec_fn: forking this test process, which may have loaded JAX, warns and is unsafe). Writes past
    the limit fail with EFBIG instead of SIGXFSZ (an ignored signal stays ignored across exec)."""
    code = ("import os, resource, signal, sys; n = int(sys.argv[1]); signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])")
    return [sys.executable, "-c", code, str(n), *argv]


def test_full_disk_during_training_leaves_nothing(tmp_path):
    """A file-size limit stands in for a full disk: the first checkpoint cannot be written, the run
    fails with one line and leaves no weights without a manifest (here: nothing at all)."""
    out = tmp_path / "run"
    p = subprocess.run(_fsize_limited(60_000, [*EXE, "--threads", "1", "train-teacher", "--dataset", "digits", "--d", "2",
                                               "--steps", "4", "--batch-size", "8", "--sample-every", "0",
                                               "--checkpoint-every", "2", "--out", str(out), "--quiet"]),
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert p.returncode == OUTPUT, p.stderr
    one_line(p.stderr.strip().splitlines(), "cannot write")
    assert not out.exists()


def test_a_failed_final_write_keeps_the_checkpoint_and_resume_finishes(runs, tmp_path, capsys):
    """Weights are never left without a manifest: when the manifest cannot be written the final weights
    are removed, the step-N checkpoint is kept, and --resume finishes the run."""
    r = copy_run(runs / "t", tmp_path / "t")
    for name in ("manifest.json", "generator.safetensors", "discriminator.safetensors"):
        (r / name).unlink()
    (r / "manifest.json").mkdir()  # the manifest cannot be written
    args = ["train-teacher", "--dataset", "digits", "--d", "2", "--steps", "4", "--batch-size", "8",
            "--sample-every", "0", "--checkpoint-every", "2", "--out", r, "--resume", "--quiet"]
    got, lines = cli(capsys, *args)
    assert got == OUTPUT
    one_line(lines, "checkpoint at step 4 is kept: continue with --resume")
    assert not (r / "generator.safetensors").exists() and (r / "state.json").exists()
    (r / "manifest.json").rmdir()
    got, lines = cli(capsys, *args)
    assert got == 0, lines
    m = json.loads((r / "manifest.json").read_text())
    assert m["train"]["step"] == 4 and (r / "generator.safetensors").exists()


def test_export_failing_to_record_leaves_no_model_file(runs, tmp_path):
    """The manifest update fails (a file-size limit above the model's size, below the manifest's):
    the model file is not left behind unrecorded."""
    r = copy_run(runs / "s", tmp_path / "s")
    edit_manifest(r, lambda m: m.update(note="x" * 400_000))
    p = subprocess.run(_fsize_limited(300_000, [*EXE, "export", str(r), "--format", "onnx"]), capture_output=True,
                       text=True, timeout=300, cwd=REPO)
    assert p.returncode == OUTPUT, p.stderr
    one_line(p.stderr.strip().splitlines(), "cannot write")
    assert not (r / "exports").exists() or list((r / "exports").iterdir()) == []
    assert "exports" not in json.loads((r / "manifest.json").read_text())


def test_export_removes_temporaries_of_killed_exports(runs, tmp_path, capsys):
    r = copy_run(runs / "s", tmp_path / "s")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (r / "exports").mkdir()
    stale = r / "exports" / f".s-onnx-fp32.{dead.pid}.abc123.tmp.onnx"  # what a SIGKILL during parity leaves
    stale.write_bytes(b"half a model")
    got, lines = cli(capsys, "export", r, "--format", "onnx")
    assert got == 0, lines
    assert not stale.exists()
    assert sorted(p.name for p in (r / "exports").iterdir()) == ["s-onnx-fp32.onnx"]


def test_export_into_a_symlinked_exports_folder_is_refused(runs, tmp_path, capsys):
    r = copy_run(runs / "s", tmp_path / "s")
    (tmp_path / "elsewhere").mkdir()
    (r / "exports").symlink_to(tmp_path / "elsewhere")
    got, lines = cli(capsys, "export", r, "--format", "onnx")
    assert got == CONFIG
    one_line(lines, "symbolic link")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_training_that_diverges_stops_with_a_typed_error_and_keeps_its_checkpoint(runs, tmp_path, capsys):
    """A teacher whose images turn NaN after the run started (its weights replaced on disk cannot do
    that; a huge learning rate can): --lr 1e30 makes the loss non-finite within a few steps."""
    out = tmp_path / "run"
    got, lines = cli(capsys, "distill", "--teacher", runs / "t", "--lr", "1e30", "--steps", "50", "--batch-size", "8",
                     "--eval-samples", "8", "--checkpoint-every", "1", "--out", out, "--quiet")
    assert got == DIVERGED, lines
    one_line(lines, "diverged at step")
    assert "continue with --resume" in lines[0] and (out / "state.json").exists()
    assert not (out / "generator.safetensors").exists() and not (out / "manifest.json").exists()


def test_double_ctrl_c_is_one_line_and_the_checkpoint_survives(tmp_path):
    """Each step waits for what the child did, never for a time (issue 18): the first checkpoint, then
    the line that says the first Ctrl-C was handled (two signals sent together may arrive as one), then
    the exit. HANG_GUARD only ends a child that hangs; the child is killed and reaped whatever happens."""
    from tests.procs import HANG_GUARD, Lines, spawned, wait_until

    out = tmp_path / "run"
    # Ctrl-C as a terminal delivers it: a shell starts a foreground command with SIGINT at its default, but
    # a background job (`make test &`, nohup, some CI runners) passes SIGINT on as *ignored*, and Python
    # then installs no KeyboardInterrupt handler at all, so the child would train on (what the 120 s
    # timeout of issue 18 met). Restore the default first, as the terminal's shell would.
    exe = [sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                                 "from edgegan.app.cli import main; sys.exit(main())"]
    cmd = [*exe, "--threads", "1", "train-teacher", "--dataset", "digits", "--d", "2", "--steps", "100000",
           "--batch-size", "8", "--sample-every", "0", "--checkpoint-every", "5", "--out", str(out)]
    with spawned(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO) as p:
        err = Lines(p)
        assert wait_until(lambda: (out / "state.json").exists(), p, "first checkpoint"), err.close()
        p.send_signal(signal.SIGINT)
        assert err.wait_for("interrupt: stopping after this step"), err.close()  # the first press, handled
        p.send_signal(signal.SIGINT)  # the second: stop now (or, if the step already ended, nothing more)
        assert p.wait(timeout=HANG_GUARD) == 130, err.close()
        text = err.close()
    assert "Traceback" not in text and text.strip().splitlines()[-1] == "edgegan: interrupted", text
    from edgegan.checkpoint import read_training_state

    assert read_training_state(out)["step"] >= 5



def test_sigterm_stops_a_background_run_with_a_checkpoint(tmp_path):
    """A run started as a background job (`nohup edgegan distill ... &`) has SIGINT ignored, so Ctrl-C
    cannot reach it; `kill` (SIGTERM) does, and it must stop at a step boundary with an exact checkpoint
    that --resume continues, like the first Ctrl-C (issue 19), exit 143, one line."""
    from tests.procs import HANG_GUARD, Lines, spawned, wait_until
    from edgegan.checkpoint import read_training_state

    out = tmp_path / "run"
    exe = [sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                                 "from edgegan.app.cli import main; sys.exit(main())"]  # as nohup/& leave it
    cmd = [*exe, "--threads", "1", "train-teacher", "--dataset", "digits", "--d", "2", "--steps", "100000",
           "--batch-size", "8", "--sample-every", "0", "--checkpoint-every", "5", "--out", str(out)]
    with spawned(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO) as p:
        err = Lines(p)
        assert wait_until(lambda: (out / "state.json").exists(), p, "first checkpoint"), err.close()
        p.send_signal(signal.SIGINT)  # ignored, as in a background job: the run goes on
        p.send_signal(signal.SIGTERM)
        assert err.wait_for("SIGTERM: stopping after this step"), err.close()
        assert p.wait(timeout=HANG_GUARD) == 143, err.close()
        text = err.close()
    assert "Traceback" not in text and text.strip().splitlines()[-1] == "edgegan: terminated", text
    line = next(ln for ln in text.splitlines() if "interrupted: checkpoint at step" in ln)
    step = int(line.split("checkpoint at step ")[1].split()[0])
    assert read_training_state(out)["step"] == step  # the step it stopped at, not the last periodic one
