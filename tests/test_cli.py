"""The command-line contract: help everywhere, torch-free --help, one-line errors, nothing written on bad input."""

import json
import subprocess
import sys

import pytest

from edgegan.app.cli import COMMANDS, build_parser, main

EXE = [sys.executable, "-m", "edgegan.app.cli"]


def run(*args, timeout=300):
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_every_command_and_imports_no_torch():
    code = ("import sys; from edgegan.app.cli import main\n"
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
    assert set(build_parser().commands) == set(COMMANDS)


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
    # stderr is a pipe here, as in `nohup ... > log 2>&1`: progress lines every 60 s unless asked otherwise
    assert m["config"]["progress_every"] == 0  # --quiet
    for extra, want in (([], 60), (["--progress-every", "0"], 0), (["--progress-every", "5"], 5)):
        out = tmp_path / f"s{want}"
        r = run("distill", "--teacher", str(t), "--d", "2", "--steps", "2", "--out", str(out), *extra)
        assert r.returncode == 0, r.stderr
        assert json.loads(run("info", str(out), "--json").stdout)["config"]["progress_every"] == want


# ------------------------------------------------------------------ click: generated, strict, scriptable

def usage_error(r, pattern: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and pattern in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize("args,full", [
    (["export", "run", "--format", "onnx", "--quant", "int8"], "--quantize"),  # argparse accepted this one
    (["train-teacher", "--data", "digits"], "--dataset"),
    (["distill", "--teach", "t"], "--teacher"),
    (["bench", "run", "--sample", "10"], "--samples"),
])
def test_an_abbreviated_option_is_refused_and_the_full_name_suggested(tmp_path, args, full):
    r = run(*args, "--out", str(tmp_path / "o"))
    usage_error(r, f"No such option '{args[-2]}'")
    assert full in r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,pattern", [
    (["exprot"], "Did you mean 'export'"),
    (["train-teacher", "--datset", "digits"], "'--dataset'"),
    (["distill", "--teacher", "t", "--los", "mse"], "'--loss'"),
    (["train-teacher", "--dataset", "mnsit"], "Did you mean 'mnist'"),
    (["distill", "--teacher", "t", "--loss", "jiont"], "Did you mean 'joint'"),
    (["export", "r", "--format", "tflte"], "Did you mean 'tflite'"),
    (["distill", "--teacher", "t", "--family", "dcgna"], "Did you mean 'dcgan'"),
])
def test_a_typo_gets_the_closest_match_in_one_line(tmp_path, args, pattern):
    usage_error(run(*args, "--out", str(tmp_path / "o")) if args != ["exprot"] else run(*args), pattern)
    assert not (tmp_path / "o").exists()


def test_missing_required_option_is_a_one_line_usage_error(tmp_path):
    usage_error(run("train-teacher", "--out", str(tmp_path / "o")), "--dataset")
    usage_error(run("distill", "--out", str(tmp_path / "o")), "--teacher")
    usage_error(run("train-teacher", "--dataset", "digits", "--d", "two", "--out", str(tmp_path / "o")), "two")


def _config_commands():
    from edgegan.bench.options import BenchOptions
    from edgegan.distill import DistillConfig
    from edgegan.export.formats import ExportOptions
    from edgegan.app.sweep import PickOptions, SweepConfig
    from edgegan.train import TrainConfig

    return {"train-teacher": TrainConfig, "distill": DistillConfig, "export": ExportOptions, "bench": BenchOptions,
            "sweep": SweepConfig, "pick": PickOptions}


@pytest.mark.parametrize("name", sorted(_config_commands()))
def test_every_config_field_is_an_option_with_the_dataclass_default_and_help(name):
    """The CLI is generated from the dataclass: walk every field, find its option, compare."""
    import dataclasses

    import click

    cls = _config_commands()[name]
    params = {p.name: p for p in COMMANDS[name].params if isinstance(p, click.Option)}
    fields = [f for f in dataclasses.fields(cls) if f.init]
    assert fields
    for f in fields:
        opt = params.get(f.name)
        assert opt is not None, f"{cls.__name__}.{f.name} has no option in `edgegan {name}`"
        assert opt.opts[0] == "--" + f.name.replace("_", "-")
        assert opt.help, f"{cls.__name__}.{f.name} has no help text (opt(..., help) or a comment on its line)"
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            assert opt.required, f.name
        elif name == "train-teacher" and f.name == "dataset":
            assert opt.required  # the one policy of the CLI's own: a teacher's data is named explicitly
        else:
            want = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            got = opt.default if not opt.multiple else tuple(opt.default or ())
            assert got == want and type(got) is type(want), (name, f.name, got, want)
            assert not opt.required


def test_a_new_config_field_appears_without_touching_the_cli():
    import dataclasses

    from edgegan.app.cli import config_options
    from edgegan.config import opt

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        ema: float = opt(0.999, "EMA decay of the student's weights")
        terms: str | None = None  # loss terms, comma-separated
        warmup: int = 0

    seen = {}
    import click

    @click.command()
    @config_options(Cfg)
    def cmd(cfg):
        seen["cfg"] = cfg

    help_text = cmd.get_help(click.Context(cmd))
    assert "--ema" in help_text and "EMA decay" in help_text and "0.999" in help_text
    assert "--terms" in help_text and "loss terms, comma-separated" in help_text and "--warmup" in help_text
    cmd.main(["--ema", "0.5", "--terms", "mse,gan"], standalone_mode=False)
    assert seen["cfg"] == Cfg(ema=0.5, terms="mse,gan", warmup=0)


def test_threads_is_applied_when_a_command_runs_and_never_for_help():
    code = ("import sys\nfrom edgegan.app.cli import main\n"
            "try:\n    main(['--threads', '2', 'distill', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules\n"
            "main(['--threads', '1', 'families'])\n"
            "import torch\nprint('THREADS', torch.get_num_threads())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "THREADS 1" in r.stdout, r.stdout + r.stderr


def test_distill_accepts_resume_and_the_global_threads_option(tmp_path):
    # Both options parse (no usage error, exit 2): the command runs far enough to find nothing to resume, a
    # CheckpointError (exit 4) checked before the teacher is loaded, so --resume never pays for a teacher.
    r = run("--threads", "1", "distill", "--teacher", "/no/such/teacher", "--resume", "--out", str(tmp_path / "s"))
    assert r.returncode == 4 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "nothing to resume" in r.stderr and "start without --resume" in r.stderr, r.stderr
    assert not (tmp_path / "s").exists()
    usage_error(run("--threads", "0", "formats"), "--threads")


@pytest.mark.parametrize("args", [["formats", "--json"], ["datasets", "--json"], ["families", "--json"]])
def test_listing_json_parses(args):
    r = run(*args)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    if args[0] == "formats":
        tfl = {p["quantize"]: p for p in doc["formats"]["tflite"]["precisions"]}
        assert "tflite-runtime" not in tfl["dynamic-int8"]["backends"]
        assert "transpose_conv" in tfl["dynamic-int8"]["refused_by"]["tflite-runtime"]
        assert "tflite-runtime" in tfl["none"]["backends"] and "litert" in tfl["dynamic-int8"]["backends"]
    elif args[0] == "datasets":
        assert {d["name"] for d in doc} >= {"digits", "mnist"}
    else:
        assert [f["name"] for f in doc] == ["anyshape", "dcgan", "mobile_i2i", "resnet_i2i"]
        assert {f["name"]: f["input"] for f in doc}["mobile_i2i"] == "image"  # issue 21
        assert {f["name"]: f["input"] for f in doc}["dcgan"] == "latent"


def test_formats_text_shows_which_backends_run_each_precision():
    r = run("formats")
    assert r.returncode == 0
    line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("dynamic-int8"))
    assert "runs on: litert" in line and "(not tflite-runtime)" in line


@pytest.mark.onnx
def test_export_json_parses_and_is_the_manifest_entry(tmp_path):
    t, s = tmp_path / "t", tmp_path / "s"
    assert run("train-teacher", "--dataset", "digits", "--d", "2", "--steps", "2", "--out", str(t), "-q").returncode == 0
    assert run("distill", "--teacher", str(t), "--steps", "2", "--out", str(s), "-q").returncode == 0
    r = run("export", str(s), "--format", "onnx", "--json")
    assert r.returncode == 0, r.stderr
    entry = json.loads(r.stdout)
    m = json.loads(run("info", str(s), "--json").stdout)
    assert m["exports"] == [entry] and entry["parity"]["passed"] is True


@pytest.mark.tflite
def test_export_prints_no_converter_noise_unless_debug(tmp_path):
    """torch's register_constant deprecation and LiteRT's native XNNPACK line (C++ on fd 2) appear on
    every TFLite export; the user sees them only with --debug."""
    pytest.importorskip("litert_torch")
    t, s = tmp_path / "t", tmp_path / "s"
    assert run("train-teacher", "--dataset", "digits", "--d", "2", "--steps", "2", "--out", str(t), "-q").returncode == 0
    assert run("distill", "--teacher", str(t), "--steps", "2", "--out", str(s), "-q").returncode == 0
    r = run("export", str(s), "--format", "tflite", "--quantize", "fp16")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "parity PASSED" in r.stdout and len(r.stdout.strip().splitlines()) == 1
    r = run("--debug", "export", str(s), "--format", "tflite", "--quantize", "fp16")
    assert r.returncode == 0, r.stderr
    assert "XNNPACK" in r.stderr or "register_constant" in r.stderr  # the noise exists: hidden above, not absent


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_scripts_and_completions(shell):
    import os

    env = {**os.environ, "_EDGEGAN_COMPLETE": f"{shell}_source"}
    r = subprocess.run(EXE, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and "_EDGEGAN_COMPLETE" in r.stdout, r.stderr
    env = {**os.environ, "_EDGEGAN_COMPLETE": "bash_complete", "COMP_WORDS": "edgegan train-teacher --dataset mn",
           "COMP_CWORD": "3"}
    r = subprocess.run(EXE, capture_output=True, text=True, timeout=60, env=env)
    assert r.stdout.split() == ["plain,mnist"], r.stdout + r.stderr
