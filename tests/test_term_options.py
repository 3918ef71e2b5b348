"""Loss terms own their options (issue 24): each term's options class is where its options are
declared, ``DistillConfig`` takes them from the registry, and a new term with options needs only its
class and its registry row. Torch-free."""

from __future__ import annotations

import dataclasses
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import edgegan
from edgegan.config import WEIGHT, field_help, opt
from edgegan.distill_config import DistillConfig, RunOptions, config_bases
from edgegan.errors import ConfigError
from edgegan.registry import Registry
from edgegan.terms import TERMS, Term


def _names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def test_each_term_option_is_declared_once_by_its_term_and_reaches_the_config():
    owned = {"pixel": ["pixel_loss"], "feature": ["feature_layers"],
             "gan": ["gan_loss", "gan_real", "gan_start", "d_sn", "d_disc", "d_lr", "d_beta1"], "perceptual": []}
    assert {n: _names(TERMS.get(n).options) if TERMS.get(n).options else [] for n in TERMS} == owned
    term_fields = [f for n in TERMS if TERMS.get(n).options for f in dataclasses.fields(TERMS.get(n).options)]
    assert not set(_names(RunOptions)) & {f.name for f in term_fields}
    config = {f.name: f for f in dataclasses.fields(DistillConfig)}
    assert set(config) == set(_names(RunOptions)) | {f.name for f in term_fields}
    assert _names(DistillConfig)[:len(_names(RunOptions))] == _names(RunOptions)  # --teacher still heads --help
    for f in term_fields:  # the very declaration: default, help, choices, bounds
        assert config[f.name] is f or (config[f.name].default, config[f.name].metadata) == (f.default, f.metadata)
        assert field_help(DistillConfig, config[f.name])
    # a plain comment on an option class's line is its help, as on the config's own (issue 24)
    assert field_help(DistillConfig, config["feature_layers"]).startswith("feature term for non-dcgan teachers")
    assert field_help(DistillConfig, config["teacher"]).startswith("edgegan run dir")


def test_term_options_are_keywords_with_their_defaults_and_checks():
    cfg = DistillConfig(teacher="t", gan_loss="hinge", d_sn=True, pixel_loss="l1", feature_layers="a=b")
    assert (cfg.gan_loss, cfg.d_sn, cfg.pixel_loss, cfg.feature_layers, cfg.d_disc) == ("hinge", True, "l1", "a=b", 16)
    assert {"gan_loss", "pixel_loss", "feature_layers", "teacher", "num_classes"} <= set(dataclasses.asdict(cfg))
    with pytest.raises(ConfigError, match=r"^unknown gan-loss 'hinj'; valid: hinge, nonsat, relativistic\. "
                                          r"Did you mean 'hinge'\?$"):
        DistillConfig(teacher="t", gan_loss="hinj")
    with pytest.raises(ConfigError, match=r"^d-lr must be > 0, got 0$"):
        DistillConfig(teacher="t", d_lr=0)
    params = inspect.signature(DistillConfig).parameters  # the config's own keep their places; the terms' are keywords
    assert list(params)[:len(_names(RunOptions))] == _names(RunOptions)
    assert {p.kind for n, p in params.items() if n not in _names(RunOptions)} == {inspect.Parameter.KEYWORD_ONLY}


@dataclasses.dataclass(frozen=True, kw_only=True)
class EchoOptions:
    echo_gain: float = opt(1.0, "the echo term's gain", bounds=WEIGHT)
    echo_mode: str = "flat"  # how the echo term echoes


class EchoTerm(Term):
    name = "echo"
    options = EchoOptions


def _registry(*extra: type[Term]) -> Registry:
    """A copy of ``TERMS`` plus throw-away terms: the real one is never touched."""
    reg: Registry = Registry("loss term")
    for n in TERMS:
        reg.add(n, TERMS.get(n))
    for t in extra:
        reg.add(t.name, t)
    return reg


def test_a_throwaway_term_s_options_reach_a_config_built_the_same_way():
    import click

    from edgegan.app.cli import config_options

    @dataclasses.dataclass(frozen=True)
    class Cfg(*config_bases(RunOptions, _registry(EchoTerm))):
        pass

    assert set(_names(Cfg)) == set(_names(DistillConfig)) | {"echo_gain", "echo_mode"}
    assert Cfg(teacher="t", echo_gain=0.5).echo_gain == 0.5 and "echo" not in TERMS
    seen = {}

    @click.command()
    @config_options(Cfg)
    def cmd(cfg):
        seen["cfg"] = cfg

    help_text = cmd.get_help(click.Context(cmd))
    assert "--echo-gain" in help_text and "the echo term's gain" in help_text and "1.0" in help_text
    assert "--echo-mode" in help_text and "how the echo term echoes" in help_text and "--gan-loss" in help_text
    cmd.main(["--teacher", "t", "--echo-gain", "2", "--gan-loss", "hinge"], standalone_mode=False)
    assert (seen["cfg"].echo_gain, seen["cfg"].gan_loss, seen["cfg"].echo_mode) == (2.0, "hinge", "flat")


def test_an_option_declared_twice_is_refused():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Clash:
        gan_loss: str = "hinge"

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Steals:
        steps: int = 3

    with pytest.raises(TypeError, match="'gan_loss' is declared by both Clash and GanOptions"):
        config_bases(RunOptions, _registry(type("ClashTerm", (Term,), {"name": "clash", "options": Clash})))
    with pytest.raises(TypeError, match="'steps' is declared by both RunOptions and Steals"):
        config_bases(RunOptions, _registry(type("StealsTerm", (Term,), {"name": "steals", "options": Steals})))


def test_a_new_term_needs_only_its_class_and_registry_row(tmp_path):
    """End to end in a fresh interpreter: a term registered in TERMS is in DistillConfig, its
    validation, its recipes and `edgegan distill --help`."""
    script = tmp_path / "echo_term.py"
    script.write_text(textwrap.dedent('''
        from __future__ import annotations
        from dataclasses import asdict, dataclass
        from edgegan.config import WEIGHT, opt
        from edgegan.terms import TERMS, Term

        @dataclass(frozen=True, kw_only=True)
        class EchoOptions:
            echo_gain: float = opt(1.0, "the echo term's gain", bounds=WEIGHT)
            echo_mode: str = "flat"  # how the echo term echoes

        class EchoTerm(Term):
            name = "echo"
            options = EchoOptions

        TERMS.add(EchoTerm.name, EchoTerm)

        from edgegan.distill_config import DistillConfig
        from edgegan.errors import ConfigError
        cfg = DistillConfig(teacher="t", terms="pixel:1,echo:0.5", echo_gain=2.0)
        print("RECIPE", cfg.recipe().describe()["terms"], "CONFIG", asdict(cfg)["echo_gain"])
        try:
            DistillConfig(teacher="t", echo_gain=-1.0)
        except ConfigError as e:
            print("ERROR", e)
        from edgegan.app.cli import main
        main(["distill", "--help"])
    '''))
    root = str(Path(edgegan.__file__).resolve().parents[1])  # this checkout's edgegan, not an installed one
    path = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": path, "COLUMNS": "200"})
    assert "RECIPE pixel:1,echo:0.5 CONFIG 2.0" in r.stdout, r.stdout + r.stderr
    assert "ERROR echo-gain must be >= 0, got -1.0" in r.stdout
    assert "--echo-gain FLOAT" in r.stdout and "the echo term's gain  [default: 1.0]" in r.stdout
    assert "--echo-mode TEXT" in r.stdout and "how the echo term echoes" in r.stdout
