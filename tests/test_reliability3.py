"""Issue 25, the third reliability round: each class of failure an independent attack found, built
here as the attacker built it, must end as one typed line, with nothing written outside the run,
nothing lost, and in bounded time (refused before it runs: no timing is asserted; subprocess
timeouts are only generous hang guards)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Tuple

import pytest

from tests.test_bad_inputs import (BENCH, CHECKPOINT, CONFIG, EXE, REPO, cli, copy_run, edit_manifest, one_line,
                                   runs)  # noqa: F401 - runs is a fixture

SWEEP = 11


def _scripted_teacher(path: Path) -> Path:
    """A TorchScript generator whose __setstate__ raises: if anything loads it, the message says so."""
    import torch

    class Loud(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(16, 3 * 32 * 32))

        def forward(self, z):
            return torch.tanh(z @ self.w).reshape(-1, 3, 32, 32)

        @torch.jit.export
        def __getstate__(self) -> Tuple[torch.Tensor, bool]:
            return (self.w, self.training)

        @torch.jit.export
        def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
            raise RuntimeError("the archive's code ran")

    torch.jit.script(Loud()).save(str(path))
    return path


# ------------------------------------------------------------------- 1. code from a manifest

@pytest.mark.parametrize("where", ["recorded", "carried in the run, kind rewritten"])
def test_a_recorded_torchscript_teacher_is_never_loaded(where, runs, tmp_path, capsys):
    r = copy_run(runs / "s", tmp_path / "s")
    if where == "recorded":
        ts = _scripted_teacher(tmp_path / "teacher.pt")
        edit_manifest(r, lambda m: m["distill"]["teacher"].update(kind="torchscript", spec=str(ts)))
    else:  # inside the run, found through spec_from_run, and recorded as if it were ONNX
        _scripted_teacher(r / "teacher.pt")
        edit_manifest(r, lambda m: m["distill"]["teacher"].update(kind="onnx", spec=str(tmp_path / "gone.onnx"),
                                                                  spec_from_run="teacher.pt"))
    out = tmp_path / "b"
    got, lines = cli(capsys, "bench", r, "--samples", "4", "--models", "teacher", "--out", out)
    assert got == CHECKPOINT, lines
    one_line(lines, "TorchScript teacher is code")
    assert "--trust-teacher" in lines[0] and "TorchScript interpreter" not in lines[0]
    assert not out.exists()
    # --trust-teacher: now it is loaded, and its own code is what fails (proof the refusal came first)
    got, lines = cli(capsys, "bench", r, "--samples", "4", "--models", "teacher", "--trust-teacher", "--out", out)
    assert got == CHECKPOINT and "failed in the TorchScript interpreter" in lines[-1], lines
    assert not out.exists()


# ------------------------------------------------------------------- 4. lost records

def test_concurrent_records_of_one_run_are_all_kept(runs, tmp_path, monkeypatch):
    """Six exports record their file at once; a slow manifest read widens the race to certain loss
    without the lock (each would write back the manifest it read, without the others' entries)."""
    from edgegan.export import exporter
    from edgegan.manifest import read_manifest

    r = copy_run(runs / "s", tmp_path / "s")
    (r / "exports").mkdir()
    real = exporter.read_manifest

    def slow(path):
        m = real(path)
        time.sleep(0.2)
        return m

    monkeypatch.setattr(exporter, "read_manifest", slow)
    errors = []

    def one(k: int) -> None:
        try:
            tmp = r / "exports" / f".x{k}.tmp.onnx"
            tmp.write_bytes(b"model %d" % k)
            entry = {"file": f"exports/x{k}.onnx", "format": "onnx", "precision": f"p{k}"}
            exporter.record_and_commit(r, entry, tmp, r / "exports" / f"x{k}.onnx")
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    files = sorted(e["file"] for e in read_manifest(r)["exports"])
    assert files == [f"exports/x{k}.onnx" for k in range(6)]
    assert sorted(p.name for p in (r / "exports").iterdir()) == [f"x{k}.onnx" for k in range(6)]


@pytest.mark.slow
def test_six_exports_at_once_are_all_recorded(runs, tmp_path):
    r = copy_run(runs / "s", tmp_path / "s")
    jobs = [("onnx", "none"), ("onnx", "fp16"), ("tflite", "none"), ("tflite", "fp16"), ("tflite", "weight-int8"),
            ("tflite", "dynamic-int8")]
    procs = [subprocess.Popen([*EXE, "--threads", "1", "export", str(r), "--format", f, "--quantize", q],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO) for f, q in jobs]
    try:
        errs = [p.communicate(timeout=600)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    assert [p.returncode for p in procs] == [0] * 6, errs
    m = json.loads((r / "manifest.json").read_text())
    recorded = sorted(e["file"] for e in m["exports"])
    on_disk = sorted(f"exports/{p.name}" for p in (r / "exports").iterdir())
    assert len(recorded) == 6 and recorded == on_disk


# ------------------------------------------------------------------- 5. writes outside the run

def test_a_symlink_swapped_in_for_exports_never_receives_a_file(runs, tmp_path, capsys):
    """A thread swaps exports/ for a symbolic link to a folder outside the run, over and over, while
    exports run: nothing ever lands outside; each export succeeds inside or fails with one line."""
    r = copy_run(runs / "s", tmp_path / "s")
    outside = tmp_path / "outside"
    outside.mkdir()
    (r / "exports").mkdir()
    stop = threading.Event()

    def swap():
        real, link = r / "exports.real", r / "exports"
        while not stop.is_set():
            try:
                os.rename(link, real)
                os.symlink(outside, link)
                time.sleep(0.002)
                os.unlink(link)
                os.rename(real, link)
            except OSError:
                pass
            time.sleep(0.002)

    t = threading.Thread(target=swap)
    t.start()
    codes = []
    try:
        for _ in range(4):
            got, lines = cli(capsys, "export", r, "--format", "onnx")
            codes.append(got)
            assert got == 0 or len(lines) == 1, lines
    finally:
        stop.set()
        t.join(timeout=60)
    # No tidying of exports/ and exports.real: the thread may have stopped mid-swap, or an export may have
    # made a fresh exports/ in the instant the link was gone (then both hold files). Only `outside` matters.
    assert list(outside.iterdir()) == [], codes


def test_weights_outside_the_run_are_refused(runs, tmp_path, capsys):
    r = copy_run(runs / "s", tmp_path / "s")
    other = copy_run(runs / "s", tmp_path / "other")
    edit_manifest(r, lambda m: m["model"]["weights"].update(path="../other/generator.safetensors"))
    got, lines = cli(capsys, "export", r, "--format", "onnx")
    assert got == CHECKPOINT
    one_line(lines, "must be a relative path inside the run")
    (r / "generator.safetensors").unlink()
    (r / "generator.safetensors").symlink_to(other / "generator.safetensors")
    edit_manifest(r, lambda m: m["model"]["weights"].update(path="generator.safetensors"))
    got, lines = cli(capsys, "export", r, "--format", "onnx")
    assert got == CHECKPOINT
    one_line(lines, "resolves outside the run")
    assert not (r / "exports").exists()


@pytest.mark.parametrize("how", ["absolute", "symlink", "fifo"])
def test_bundle_packs_only_regular_files_inside_the_run(how, runs, tmp_path, capsys):
    r = copy_run(runs / "s", tmp_path / "s")
    secret = tmp_path / "secret.onnx"
    secret.write_bytes(b"not yours")
    (r / "exports").mkdir()
    name = {"absolute": str(secret), "symlink": "exports/s.onnx", "fifo": "exports/s.onnx"}[how]
    if how == "symlink":
        (r / "exports" / "s.onnx").symlink_to(secret)
    elif how == "fifo":
        os.mkfifo(r / "exports" / "s.onnx")
    edit_manifest(r, lambda m: m.update(exports=[{"file": name, "format": "onnx", "precision": "fp32", "bytes": 9,
                                                  "sha256": "0" * 64, "parity": {"passed": True}}]))
    out = tmp_path / "b.tar.gz"
    got, lines = cli(capsys, "bundle", r, "-o", out)
    assert got == 8, lines
    one_line(lines, {"absolute": "inside the run", "symlink": "resolves outside the run", "fifo": "FIFO"}[how])
    assert not out.exists()


# ------------------------------------------------------------------- 6. messages that lie

def test_control_characters_from_files_are_escaped_on_stderr(runs, tmp_path, capsys):
    spec = str(tmp_path / "t\x1b[2J\nedgegan: OK.onnx")
    got, lines = cli(capsys, "distill", "--teacher", spec, "--steps", "1", "--out", tmp_path / "o")
    assert got == CHECKPOINT
    one_line(lines, "\\x1b[2J edgegan: OK.onnx")
    assert "\x1b" not in lines[0]
    r = copy_run(runs / "s", tmp_path / "s")
    edit_manifest(r, lambda m: m.update(exports=[{"file": "exports/a\x1b[31m\nOK|b.onnx", "format": "onnx",
                                                  "precision": "fp32", "bytes": 1, "sha256": "0" * 64,
                                                  "parity": {"passed": True}}]))
    capsys.readouterr()
    from edgegan.app.cli import main

    assert main(["info", str(r)]) == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text and "a\\x1b[31m OK|b.onnx" in text


def test_markdown_cells_from_files_stay_one_cell():
    from edgegan.bench.harness import to_markdown

    evil = "d=2 | fake | row |\n| teacher | torch | fp32 \x1b[32mOK"
    row = {"name": evil, "kind": "export", "format": "onnx", "precision": "fp32", "params": 10, "macs": 1, "bytes": 1,
           "compression": 1.0, "latency": {"error": evil}, "quality": {"metrics": {}},
           "devices": {evil: {"p50_us": 1.0, "error": None}}}
    doc = {"created": "now", "machine": {"cpu": evil, "cores": 1}, "settings": {"batch": 1, "threads": 1, "samples": 2},
           "versions": {}, "results": [{"run": evil, "dataset": "digits", "models": [row]}],
           "devices": [{"label": evil, "file": evil, "machine": {"platform": evil}, "settings": {}}]}
    md = to_markdown(doc)
    assert "\x1b" not in md
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(table) == 3  # header, rule, one row: no forged row
    cells = [c for c in table[2].replace("\\|", "").split("|")]
    assert len(cells) == len(table[0].replace("\\|", "").split("|"))


# ------------------------------------------------------------------- 3. FIFOs a sweep reads

@pytest.mark.parametrize("name", ["sweep.json", "plan.json"])
def test_a_fifo_in_a_sweep_is_refused_without_blocking(name, tmp_path, capsys):
    d = tmp_path / "sw"
    d.mkdir()
    os.mkfifo(d / name)  # opened without O_NONBLOCK, this would wait for a writer forever
    if name == "sweep.json":
        got, lines = cli(capsys, "pick", d)
    else:
        got, lines = cli(capsys, "sweep", "--dataset", "digits", "--teacher", "2", "--d", "1", "--recipes", "mse",
                         "--seeds", "1", "--steps", "1", "--out", d)
    assert got == SWEEP, lines
    one_line(lines, "is a FIFO, not a regular file")


def test_a_fifo_as_a_sweep_run_result_is_refused(tmp_path):
    from edgegan.errors import SweepError
    from edgegan.app.sweep import Sweep, SweepConfig

    s = Sweep(SweepConfig(), tmp_path, progress=False)
    d = s.run_dir("student-d2-mse-s0")
    d.mkdir(parents=True)
    os.mkfifo(d / "result.json")
    (d / "DONE").write_text("")
    with pytest.raises(SweepError, match="FIFO"):
        s.result("student-d2-mse-s0")


# ------------------------------------------------------------------- 7. pick and bench inputs

def _sweep_table(tmp_path: Path, edit=None) -> Path:
    from edgegan.app.sweep import SCHEMA

    def run(d, p50, nbytes, kid):
        return {"seed": 0, "id": f"student-d{d}-mse-s0", "file": f"runs/d{d}.tflite", "sha256": f"sha{d}",
                "bytes": nbytes, "p50_us": p50, "headline": kid, "headline_deployed": kid}

    rows = [{"d": d, "recipes": {"mse": {"runs": [run(d, p50, b, k)]}}}
            for d, p50, b, k in ((2, 50.0, 10_000, 0.30), (4, 120.0, 40_000, 0.10))]
    doc = {"schema": SCHEMA, "config": {"target": "tflite:int8"}, "rows": rows,
           "headline": {"key": "classifier_kid", "label": "KID", "higher_is_better": False}}
    if edit is not None:
        edit(doc)
    text = json.dumps(doc)  # Python writes NaN as the bare token NaN, as a tampered file may hold it
    d = tmp_path / "sw"
    d.mkdir()
    (d / "sweep.json").write_text(text)
    return d


def _run0(doc):
    return doc["rows"][0]["recipes"]["mse"]["runs"][0]


TAMPERED_TABLES = {
    "NaN headline": (lambda doc: _run0(doc).update(headline_deployed=float("nan")), "headline_deployed"),
    "infinite latency": (lambda doc: _run0(doc).update(p50_us=float("inf")), "p50_us"),
    "negative bytes": (lambda doc: _run0(doc).update(bytes=-5), "bytes"),
    "d a string": (lambda doc: doc["rows"][0].update(d="2"), "rows[0].d"),
    "rows an object": (lambda doc: doc.update(rows={"d": 2}), "rows should be a list"),
    "runs missing": (lambda doc: doc["rows"][0]["recipes"]["mse"].pop("runs"), "is missing"),
    "headline a list": (lambda doc: doc.update(headline=[1]), "headline should be an object"),
    "higher_is_better a string": (lambda doc: doc["headline"].update(higher_is_better="no"), "higher_is_better"),
}


@pytest.mark.parametrize("case", list(TAMPERED_TABLES))
def test_pick_refuses_a_tampered_sweep_table(case, tmp_path, capsys):
    edit, pattern = TAMPERED_TABLES[case]
    got, lines = cli(capsys, "pick", _sweep_table(tmp_path, edit))
    assert got == SWEEP, lines
    one_line(lines, pattern)


def test_pick_refuses_deep_nesting_and_huge_integers(tmp_path, capsys):
    d = _sweep_table(tmp_path)
    (d / "sweep.json").write_text("[" * 100_000 + "]" * 100_000)
    got, lines = cli(capsys, "pick", d)
    assert got == SWEEP
    one_line(lines, "nested too deeply")
    (d / "sweep.json").write_text('{"schema": ' + "9" * 5000 + "}")
    got, lines = cli(capsys, "pick", d)
    assert got == SWEEP
    one_line(lines, "not valid JSON")


HOSTILE_DEVICES = {
    "negative latency": ({"models": [{"sha256": "x", "latency": {"p50_us": -3.0}}]}, "p50_us"),
    "NaN latency": ({"models": [{"sha256": "x", "latency": {"p50_us": float("nan")}}]}, "p50_us"),
    "model a string": ({"models": ["x"]}, "models[0] should be an object"),
    "machine a string": ({"machine": "pi", "models": []}, "machine should be an object"),
    "emulated a string": ({"machine": {"emulated": "no"}, "models": []}, "emulated"),
    "latency a list": ({"models": [{"sha256": "x", "latency": [1]}]}, "latency should be an object"),
    "cpu a number": ({"machine": {"cpu": 7}, "models": []}, "machine.cpu"),
}


@pytest.mark.parametrize("case", list(HOSTILE_DEVICES))
def test_bench_refuses_hostile_device_results_before_writing(case, runs, tmp_path, capsys):
    body, pattern = HOSTILE_DEVICES[case]
    p = tmp_path / "device.json"
    p.write_text(json.dumps({"schema": "edgegan.device-results/1", **body}))
    out = tmp_path / "b"
    got, lines = cli(capsys, "bench", runs / "s", "--samples", "4", "--device-results", p, "--out", out)
    assert got == BENCH, lines
    one_line(lines, pattern)
    assert not out.exists()
    got, lines = cli(capsys, "pick", _sweep_table(tmp_path), "--device-results", p)
    assert got == BENCH, lines


# ------------------------------------------------------------------- 8. untyped errors

def test_manifest_nul_byte_dict_and_huge_integer_are_typed(runs, tmp_path, capsys):
    cases = [
        (lambda m: m["model"]["weights"].update(path="generator.safetensors\0.x"), "holds a NUL character"),
        (lambda m: m["distill"]["teacher"].update(spec_from_run={"a": 1}), "spec_from_run should be str"),
        (lambda m: m["model"]["args"].update(d=10**30), "beyond 64 bits"),
    ]
    for k, (edit, pattern) in enumerate(cases):
        r = copy_run(runs / "s", tmp_path / f"s{k}")
        edit_manifest(r, edit)
        got, lines = cli(capsys, "export", r, "--format", "onnx")
        assert got == CHECKPOINT, (pattern, lines)
        one_line(lines, pattern)
    r = copy_run(runs / "s", tmp_path / "digits")
    text = (r / "manifest.json").read_text().replace('"params": ', '"params": ' + "1" * 5000 + ", \"x\": ", 1)
    (r / "manifest.json").write_text(text)
    got, lines = cli(capsys, "info", r)
    assert got == CHECKPOINT
    one_line(lines, "not valid JSON")


def test_idx_of_255_dimensions_and_npz_string_labels_are_dataset_errors(tmp_path, capsys):
    import struct

    import numpy as np

    d = tmp_path / "mnist"
    d.mkdir()
    (d / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\xff" + struct.pack(">255I", *([1] * 255)) + b"\0")
    (d / "train-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01" + struct.pack(">I", 1) + b"\0")
    got, lines = cli(capsys, "train-teacher", "--dataset", "mnist", "--data-dir", d, "--d", "2", "--steps", "1",
                     "--out", tmp_path / "o1")
    assert got == 3, lines
    one_line(lines, "IDX file of 255 dimensions")
    np.savez(tmp_path / "x.npz", images=np.zeros((4, 8, 8), np.uint8), labels=np.array(["a", "b", "c", "d"]))
    got, lines = cli(capsys, "train-teacher", "--dataset", "folder", "--data-dir", tmp_path / "x.npz", "--d", "2",
                     "--steps", "1", "--out", tmp_path / "o2")
    assert got == 3, lines
    one_line(lines, "'labels' must be integers")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_a_factory_that_returns_no_module_is_a_teacher_error(tmp_path, capsys):
    got, lines = cli(capsys, "distill", "--teacher", "tests.factories:not_a_module", "--steps", "1",
                     "--out", tmp_path / "o")
    assert got == CHECKPOINT, lines
    one_line(lines, "not a torch.nn.Module")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------- 9. memory

def test_bench_refuses_samples_that_will_not_fit_in_memory(runs, tmp_path, capsys, monkeypatch):
    """The memory a bench needs is estimated before any work and compared with what the machine has
    (here: 64 MiB, set by the test, so the outcome does not depend on this machine)."""
    from edgegan.bench import probes  # the memory check lives beside the probes

    monkeypatch.setattr(probes, "available_memory", lambda: 64 << 20)
    out = tmp_path / "b"
    got, lines = cli(capsys, "bench", runs / "s", "--samples", "100000", "--out", out)
    assert got == BENCH, lines
    one_line(lines, "--samples 100,000 keeps")
    assert "GiB is available" in lines[0] and "use --samples" in lines[0]
    assert not out.exists()


# ------------------------------------------------------------------- 10. small ones

def test_an_empty_out_is_a_usage_error(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got, lines = cli(capsys, "export", runs / "s", "--format", "onnx", "--out", "")
    assert got == CONFIG
    one_line(lines, "must name a folder")
    assert list(tmp_path.iterdir()) == []


def test_export_removes_stale_temporaries_of_any_export(runs, tmp_path, capsys):
    r = copy_run(runs / "s", tmp_path / "s")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (r / "exports").mkdir()
    stale = r / "exports" / f".s-tflite-int8.{dead.pid}.abc123.tmp.tflite"  # another file's killed export
    stale.write_bytes(b"half a model")
    got, lines = cli(capsys, "export", r, "--format", "onnx")
    assert got == 0, lines
    assert sorted(p.name for p in (r / "exports").iterdir()) == ["s-onnx-fp32.onnx"]


def test_an_onnx_teacher_never_reads_external_data_beside_it(tmp_path, capsys):
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    (tmp_path / "secret.bin").write_bytes(np.zeros(16 * 3 * 8 * 8, np.float32).tobytes())
    w = numpy_helper.from_array(np.zeros((16, 3 * 8 * 8), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", "secret.bin"), ("offset", "0"), ("length", str(16 * 3 * 8 * 8 * 4))):
        w.external_data.add(key=k, value=v)
    shape = numpy_helper.from_array(np.array([-1, 3, 8, 8], np.int64), "shape")
    g = helper.make_graph([helper.make_node("MatMul", ["z", "w"], ["y"]), helper.make_node("Reshape", ["y", "shape"], ["img"])],
                          "t", [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, ["N", 16])],
                          [helper.make_tensor_value_info("img", onnx.TensorProto.FLOAT, ["N", 3, 8, 8])], [w, shape])
    p = tmp_path / "teacher.onnx"
    p.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    got, lines = cli(capsys, "distill", "--teacher", p, "--steps", "1", "--out", tmp_path / "o")
    assert got == CHECKPOINT, lines
    one_line(lines, "external data")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------- found while checking earlier issues

def test_the_family_follows_the_teachers_shape_when_not_given(tmp_path, capsys):
    """A 24x24 teacher: dcgan (square 32 or 64) cannot make it, so the student is anyshape; typed
    --family dcgan is still refused with the reason (never silently changed)."""
    common = ("distill", "--teacher", "tests.factories:odd_size", "--latent-dim", "16", "--d", "1", "--steps", "1",
              "--batch-size", "8", "--eval-samples", "8", "--checkpoint-every", "0", "--quiet")
    got, lines = cli(capsys, *common, "--family", "dcgan", "--out", tmp_path / "a")
    assert got == CHECKPOINT
    one_line(lines, "--family anyshape")
    got, lines = cli(capsys, *common, "--out", tmp_path / "b")
    assert got == 0, lines
    m = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert m["model"]["family"] == "anyshape" and m["model"]["output"]["shape"] == [3, 24, 24]


def test_resume_of_a_finished_run_reports_it_complete(runs, tmp_path, capsys, caplog):
    args = ("distill", "--teacher", runs / "t", "--d", "1", "--steps", "2", "--batch-size", "8", "--eval-samples", "8",
            "--checkpoint-every", "1", "--out", tmp_path / "s", "--quiet")
    got, lines = cli(capsys, *args)
    assert got == 0, lines
    before = (tmp_path / "s" / "manifest.json").read_bytes()
    got, lines = cli(capsys, *args, "--resume")
    assert got == 0, lines
    assert "the run is complete (step 2 of --steps 2)" in caplog.text
    assert (tmp_path / "s" / "manifest.json").read_bytes() == before  # nothing rewritten
    got, lines = cli(capsys, *[a if a != "2" else "1" for a in args], "--resume")  # fewer steps: still an error
    assert got == CONFIG
    one_line(lines, "already at step 2 > --steps 1")


def test_the_sweeps_held_out_split_is_sized_from_the_data(tmp_path):
    import numpy as np

    from edgegan.errors import ConfigError
    from edgegan.app.sweep import Scorer, SweepConfig

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "small.npz", images=rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8))
    base = dict(dataset="folder", data_dir=str(tmp_path / "small.npz"), samples=8)
    s = Scorer(SweepConfig(**base), progress=False)  # 250 training images: a sixth is held out
    assert s.n_holdout == 41 and s.train_limit == 250 - 41
    with pytest.raises(ConfigError, match="holdout 1000 does not fit 250 training images"):
        Scorer(SweepConfig(**base, holdout=1000), progress=False)
