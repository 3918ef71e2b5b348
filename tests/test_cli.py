"""The command-line contract: help everywhere, torch-free --help, one-line errors, nothing written on bad input."""

import json
import subprocess
import sys

import pytest

from edgegan.cli import COMMANDS, build_parser, main

EXE = [sys.executable, "-m", "edgegan.cli"]


def run(*args, timeout=300):
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_every_command_and_imports_no_torch():
    code = ("import sys; from edgegan.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('torch', 'onnxruntime', 'litert_torch', 'numpy') if m in sys.modules]\n"
            "print('LOADED', bad)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in r.stdout, r.stdout + r.stderr
    for name in COMMANDS:
        assert name in r.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert "usage: edgegan " + name in capsys.readouterr().out


def test_parser_matches_commands():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)


@pytest.mark.parametrize("args,pattern", [
    (["train-teacher", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["train-teacher", "--dataset", "digits", "--d", "0"], "must be >= 1"),
    (["train-teacher", "--dataset", "digits", "--device", "tpu"], "unknown device"),
    (["distill", "--teacher", "/no/such/teacher"], "no such teacher"),
    (["distill", "--teacher", "tests.factories:missing"], "cannot import the factory"),
])
def test_bad_inputs_one_line_and_nothing_written(tmp_path, args, pattern):
    out = tmp_path / "out"
    r = run(*args, "--out", str(out), "--quiet")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and pattern in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_corrupt_teacher_checkpoint(tmp_path):
    t = tmp_path / "t"
    assert run("train-teacher", "--dataset", "digits", "--d", "2", "--steps", "2", "--out", str(t), "--quiet").returncode == 0
    w = t / "generator.safetensors"
    w.write_bytes(w.read_bytes()[:-10] + b"0123456789")
    r = run("distill", "--teacher", str(t), "--steps", "2", "--out", str(tmp_path / "s"), "--quiet")
    assert r.returncode == 4 and "sha256 does not match" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()
    r = run("--debug", "distill", "--teacher", str(t), "--steps", "2", "--out", str(tmp_path / "s"))
    assert "Traceback" in r.stderr


def test_train_distill_info_cli(tmp_path):
    t, s = tmp_path / "t", tmp_path / "s"
    r = run("train-teacher", "--dataset", "digits", "--d", "4", "--steps", "3", "--batch-size", "8", "--seed", "1",
            "--out", str(t), "--quiet")
    assert r.returncode == 0, r.stderr
    r = run("distill", "--teacher", str(t), "--d", "2", "--steps", "3", "--out", str(s), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "compression" in r.stdout
    r = run("info", str(s), "--json")
    m = json.loads(r.stdout)
    assert m["kind"] == "student" and m["distill"]["teacher"]["spec"] == str(t)
    assert m["config"]["steps"] == 3 and m["config"]["seed"] == 0
    r = run("info", str(t))
    assert "teacher: dcgan" in r.stdout
