"""Where a quantized file loses precision: each layer's error against the float file (issue #22).

Both files are run on the calibration latents with every intermediate tensor kept; each operator's
output in the quantized file (dequantized) is compared with the same tensor of the float file:

* ``snr_db``: 10·log10(Σ ref² / Σ (q − ref)²) over all latents — the error accumulated up to here;
* ``drop_db``: how much SNR this operator loses against its input (the previous operator's output,
  or the quantized latent for the first): the precision this layer itself costs;
* ``max_abs``: the largest absolute difference, beside ``ref_max_abs`` (the tensor's own scale).

The worst layer is the one with the largest ``drop_db``, among layers whose input carries a rounding
error: one fed by an input the file holds exactly (a conditional file's one-hot label, whose 0 and 1 are
two exact int8 levels) would "lose" the whole SNR cap to its own output's rounding, a loss no other
layer can show and no ``--keep-float`` choice should chase; its row is kept (``exact_input``). Layers are named by the PyTorch modules
that litert-torch records in the tensor names (``net.12`` for ``generator.net[12]``), which is also
what ``--keep-float`` takes. Pure numpy here; the interpreter work is ``litert_adapter``'s.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from edgegan.errors import ConfigError, ParityError
# A channel whose error is within this many dB of its own signal could be broken (the measurements are in
# formats, beside the limit); one further under it carries noise, not a defect.
from edgegan.export.formats import CHANNEL_SNR_DB as OWN_SNR_BROKEN

# The per-channel check's floor, in quantization steps. Rounding alone is an error of 0.29 step RMS, and
# the untrained 48x64 generator of the tests measured 0.36 step at its tanh (signal a few steps): against
# a 4-step floor that is -21 dB, clear of the -15 dB limit, while a dead channel whose own signal is 0.7 step
# RMS or more still reaches -15 dB. Trained students' layers span tens of steps' RMS, so the floor does not
# touch them (their broken channels measured -0.9 to -5.8 dB against the layer's own power).
STEP_FLOOR = 4.0
# Operators that only move values (their error is their input's): their tensors may be NCHW at the file's
# boundary, so the channel statistics (last axis = channel, NHWC) are not taken on them.
_LAYOUT_OPS = ("RESHAPE", "TRANSPOSE", "QUANTIZE", "DEQUANTIZE", "PAD", "SQUEEZE", "EXPAND_DIMS", "UNSQUEEZE",
               "QUANTIZELINEAR", "DEQUANTIZELINEAR", "FLATTEN", "IDENTITY", "CAST")
SNR_CAP = 200.0  # dB for identical tensors (kept-float layers fed identical inputs), valid JSON
AUTO = "auto"
# A segment of a litert-torch tensor name: "<qualified.Class>_<attribute>", one per module level.
_SEGMENT = re.compile(r"^(?:[\w]+\.)*(_?[A-Za-z0-9]+)_(\w+)$")


def modules_of(scope: str, root_prefix: str = "generator.") -> list[str]:
    """PyTorch module paths named in an operator's scope (its output tensor names), in order, once each.

    ``a.LatentToImage/b.DCGANGenerator_generator/c.Sequential_net/d.Conv2d_12;3`` → ``["net.12"]``:
    the attribute names along the path, without the exporter's own wrapper (``root_prefix``).
    """
    out: list[str] = []
    for part in scope.split(";"):
        if "/" not in part:
            continue
        attrs = []
        for seg in part.split("/"):
            m = _SEGMENT.match(seg)
            if m:
                attrs.append(m.group(2))
        path = ".".join(attrs)
        if path.startswith(root_prefix):
            path = path[len(root_prefix):]
        if path and path not in out:
            out.append(path)
    return out


_ACTIVATION_OPS = ("TANH", "LOGISTIC", "RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "ELU", "GELU")


def layer_of(op: str, mods: Sequence[str], fallback: str) -> str:
    """The module an operator stands for: litert-torch names a fused ``conv + activation`` output
    ``activation;;conv``, so an activation operator is its first module and any other its last."""
    if not mods:
        return fallback
    return mods[0] if op in _ACTIVATION_OPS else mods[-1]


def _snr(signal: float, noise: float) -> float:
    if noise <= 0.0:
        return SNR_CAP
    if signal <= 0.0:
        return -SNR_CAP
    return max(-SNR_CAP, min(SNR_CAP, 10.0 * math.log10(signal / noise)))


@dataclass
class _Acc:
    signal: float = 0.0
    noise: float = 0.0
    max_abs: float = 0.0
    ref_max_abs: float = 0.0
    ch_signal: np.ndarray | None = None  # per channel (the last axis: TFLite tensors are NHWC)
    ch_noise: np.ndarray | None = None
    ch_count: int = 0  # values per channel, summed over the runs

    def add(self, ref: np.ndarray, got: np.ndarray, channel_axis: int = -1) -> None:
        r, g = ref.astype(np.float64), got.astype(np.float64)
        d = g - r
        self.signal += float(np.sum(r * r))
        self.noise += float(np.sum(d * d))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(d))) if d.size else 0.0)
        self.ref_max_abs = max(self.ref_max_abs, float(np.max(np.abs(r))) if r.size else 0.0)
        if r.ndim >= 2 and r.size:
            if channel_axis != -1:
                r, d = np.moveaxis(r, channel_axis, -1), np.moveaxis(d, channel_axis, -1)
            cs, cn = (r * r).reshape(-1, r.shape[-1]).sum(0), (d * d).reshape(-1, r.shape[-1]).sum(0)
            self.ch_signal = cs if self.ch_signal is None else self.ch_signal + cs
            self.ch_noise = cn if self.ch_noise is None else self.ch_noise + cn
            self.ch_count += r.size // r.shape[-1]

    @property
    def snr_db(self) -> float:
        return _snr(self.signal, self.noise)

    def worst_channel(self, step: float | None = None) -> tuple[int | None, float | None, float | None]:
        """(channel, its error power in dB against the layer's mean channel power, its own SNR in dB): a
        broken channel is an error as large as a channel's signal (about 0 dB), quantization noise tens of
        dB below. The worst is the channel of largest error among those whose own SNR is under
        ``OWN_SNR_BROKEN`` (the ones that could be broken); if there is none, the channel of largest error.

        The reference power is at least that of ``STEP_FLOOR`` quantization steps (``step``, the
        quantized tensor's scale): a layer whose whole signal is a step or two of its grid (an untrained
        generator's near-zero image behind TFLite's fixed 1/128 tanh scale) has an error of a fraction of
        a step, which is rounding, not a broken channel, though it is as large as the signal itself."""
        if self.ch_signal is None or len(self.ch_signal) < 2:
            return None, None, None
        mean = float(self.ch_signal.mean())
        if step:
            mean = max(mean, self.ch_count * (STEP_FLOOR * step) ** 2)
        own = np.array([_snr(float(s), float(n)) for s, n in zip(self.ch_signal, self.ch_noise)])
        noise = np.where(own < OWN_SNR_BROKEN, self.ch_noise, -1.0)
        c = int(np.argmax(noise)) if noise.max() >= 0 else int(np.argmax(self.ch_noise))
        return c, round(-_snr(mean, float(self.ch_noise[c])), 2), round(float(own[c]), 2)


def layer_report(ops: Sequence[Any], float_runs: Iterable[dict[str, np.ndarray]],
                 quant_runs: Iterable[dict[str, np.ndarray]], *, kept: Sequence[str] = (),
                 latents: int | None = None, channel_axis: int = -1, reference: str | None = None) -> dict[str, Any]:
    """The manifest's ``layers`` section from two runs of the same latents (``litert_layers.all_tensors``)
    through the float and the quantized file; ``ops`` are ``litert_layers.OpInfo`` of the quantized file
    (or any object with its fields; one with a ``layer`` names its layer itself, as ONNX nodes do).
    ``channel_axis``: -1 for TFLite's NHWC tensors, 1 for ONNX's NCHW."""
    names = {o.output for o in ops} | {o.input for o in ops if o.input}
    acc = {n: _Acc() for n in names}
    for ref, got in zip(float_runs, quant_runs):
        for n in names:
            if n in ref and n in got and ref[n].shape == got[n].shape:
                acc[n].add(ref[n], got[n], channel_axis)
    has_ref = {n for n, a in acc.items() if a.signal or a.noise or a.ref_max_abs}
    made_by = {o.output: o.input for o in ops}

    def source(n: str | None) -> str | None:
        # Through the Quantize/Dequantize operators the quantizer inserted (no float tensor of theirs).
        seen = 0
        while n is not None and n not in has_ref and n in made_by and seen < len(ops):
            n, seen = made_by[n], seen + 1
        return n if n in has_ref else None

    rows = []
    for o in ops:
        a = acc.get(o.output)
        if a is None or a.signal == 0.0 and a.noise == 0.0 and a.ref_max_abs == 0.0:
            continue  # a tensor the float file does not have (a Quantize/Dequantize the quantizer added)
        src = source(o.input)
        # With no measured input (a float graph input), a layout operator's SNR is the input's rounding, shown
        # in its SNR column; its drop from an exact input would read as the cap, not as a loss.
        before = acc[src].snr_db if src is not None else a.snr_db if o.op.upper() in _LAYOUT_OPS else SNR_CAP
        if getattr(o, "layer", None):
            mods, name = ([o.layer] if getattr(o, "module", False) else []), o.layer
        else:
            mods = modules_of(o.scope)
            # An operator of no module (the final reshape to the output) is named by its role.
            name = layer_of(o.op, mods, "output" if o.output.endswith("_output") else o.output)
        ch, ch_db, ch_snr = (None, None, None) if o.op.upper() in _LAYOUT_OPS else \
            a.worst_channel(getattr(o, "step", None))
        exact = src is not None and acc[src].noise == 0.0 and acc[src].signal > 0.0
        rows.append({"index": o.index, "op": o.op, "layer": name, "modules": mods, "exact_input": exact,
                     "float": bool(set(mods) & set(kept)), "snr_db": round(a.snr_db, 2),
                     "worst_channel": ch, "worst_channel_err_db": ch_db, "worst_channel_snr_db": ch_snr,
                     "drop_db": round(max(0.0, before - a.snr_db), 2), "max_abs": round(a.max_abs, 6),
                     "ref_max_abs": round(a.ref_max_abs, 6)})
    # A layout operator's drop is the rounding of the tensor it moves (the latent's, for the first): no layer's.
    quantized = [r for r in rows if not r["float"] and r["op"].upper() not in _LAYOUT_OPS and not r["exact_input"]]
    chans = [r for r in rows if r["worst_channel_err_db"] is not None]
    # The worst channel of the file: the largest error among channels that could be broken, else the largest.
    suspects = [r for r in chans if r["worst_channel_snr_db"] < OWN_SNR_BROKEN]
    worst_ch = max(suspects or chans, key=lambda r: r["worst_channel_err_db"], default=None)
    worst = max(quantized or rows, key=lambda r: r["drop_db"], default=None)
    return {"reference": reference or "the float32 file, same latents (every intermediate tensor, builtin kernels)",
            "latents": latents, "metric": {"snr_db": "10 log10(sum ref^2 / sum err^2)",
                                           "drop_db": "SNR lost in this layer against its input"},
            "layers": rows, "worst": worst["layer"] if worst else None, "worst_index": worst["index"] if worst else None,
            "worst_drop_db": worst["drop_db"] if worst else None, "kept_float": list(kept),
            "worst_channel": ({"layer": worst_ch["layer"], "index": worst_ch["index"], "channel": worst_ch["worst_channel"],
                               "err_db": worst_ch["worst_channel_err_db"], "snr_db": worst_ch["worst_channel_snr_db"]}
                              if worst_ch else None)}


def most_sensitive(report: dict[str, Any], count: int, *, weight_bytes: dict[str, int] | None = None,
                   budget: float | None = None) -> list[str]:
    """The ``count`` layers (module paths) that lose the most SNR, worst first; with ``weight_bytes``
    (each layer's float32 weight bytes) and ``budget``, only layers whose float weights are at most that
    fraction of all of them: a layer that holds most of the weights (a small generator's first layer)
    would undo the file's compression for a fraction of a dB. A layer fed an exactly held input (a
    conditional file's one-hot label) is never chosen: its "drop" is the SNR cap against its own rounding,
    and keeping it in float changes nothing downstream (the module doc)."""
    out: list[str] = []
    total = sum((weight_bytes or {}).values())
    for r in sorted(report["layers"], key=lambda r: -r["drop_db"]):
        if r.get("exact_input"):
            continue
        if weight_bytes is not None and budget is not None and total and \
                weight_bytes.get(r["layer"], 0) > budget * total:
            continue
        if r["modules"] and r["layer"] not in out and r["drop_db"] > 0:
            out.append(r["layer"])
        if len(out) == count:
            break
    return out


def weight_bytes(module: Any, root_prefix: str = "generator.") -> dict[str, int]:
    """float32 bytes of each leaf layer's parameters, by the names ``module_names`` gives."""
    out = {}
    for name, sub in module.named_modules():
        if name.startswith(root_prefix) and not list(sub.children()):
            out[name[len(root_prefix):]] = 4 * sum(p.numel() for p in sub.parameters(recurse=False))
        if type(sub).__name__ == "LabelInput":
            # A conditional file's first layer (export.labels) runs outside the generator's module calls, so
            # the report names its halves "z" and "label"; without these entries auto counted them as
            # weightless and kept the z half (most of a d=2 student's weights) in float: 2.8x the int8 bytes.
            for part in ("z", "label"):
                out.setdefault(part, 4 * sum(p.numel() for p in getattr(sub, part).parameters()))
    return out


def check_layers(requested: Sequence[str], available: Sequence[str]) -> None:
    """ConfigError for a ``--keep-float`` name that is no layer of the generator, with the closest match."""
    for name in requested:
        if name not in available:
            close = difflib.get_close_matches(name, list(available), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"--keep-float {name!r}: the generator has no such layer.{hint} "
                              f"Layers: {', '.join(available)}")


def module_names(module: Any, root_prefix: str = "generator.") -> list[str]:
    """Names --keep-float accepts: the module paths of a prepared generator's leaf layers."""
    out = []
    for name, sub in module.named_modules():
        if name.startswith(root_prefix) and not list(sub.children()) and type(sub).__name__ != "Identity":
            out.append(name[len(root_prefix):])
    return out


def describe(report: dict[str, Any]) -> str:
    """A small table for the console: one line per layer, the worst marked."""
    lines = [f"{'#':>3}  {'layer':<16} {'op':<18} {'SNR dB':>7} {'drop dB':>7} {'max abs':>9}"]
    for r in report["layers"]:
        mark = "  <- worst" if r["index"] == report.get("worst_index") else ""
        kept = " (float)" if r["float"] else ""
        lines.append(f"{r['index']:>3}  {r['layer'][-16:]:<16} {r['op'][:18]:<18} {r['snr_db']:>7.2f} "
                     f"{r['drop_db']:>7.2f} {r['max_abs']:>9.4g}{kept}{mark}")
    return "\n".join(lines)


def check_io(quantization: dict[str, Any] | None, precision: Any, recipe: str | None) -> None:
    """ParityError when a file's input/output tensors are not the precision's (an int8 file with
    int16 tensors is another precision, whatever its images look like)."""
    got = {k: v["dtype"] for k, v in (quantization or {}).items()}
    for kind in ("input", "label", "output"):  # label: a conditional generator's (issue 20)
        dtype = got.get(kind, "float32")
        if dtype not in (precision.io_dtype, "float32"):  # float32: a layer kept in float at that end
            raise ParityError(f"{precision.label} file made by recipe {recipe} has a {dtype} {kind}; "
                              f"a {precision.label} file takes and returns {precision.io_dtype}")


def summary(report: dict[str, Any], *, table: bool) -> str:
    """What ``edgegan export`` prints: the layers kept in float, the worst layer, and (``table``) every layer."""
    head = []
    if report.get("kept_float"):
        how = "chosen by --keep-float auto" if report.get("auto") else "--keep-float"
        head.append(f"kept in float ({how}): {', '.join(report['kept_float'])}")
    if report.get("worst") is not None:
        head.append(f"worst quantized layer: {report['worst']} (loses {report['worst_drop_db']:.2f} dB SNR "
                    f"on {report['latents']} calibration latents)")
    return "\n".join(head + ([describe(report)] if table else []))


def channel_failures(report: dict[str, Any] | None, thresholds: Any) -> list[str]:
    """The per-layer limit (``Thresholds.channel_err_db``) that ``report`` breaks, if any."""
    limit = getattr(thresholds, "channel_err_db", None)
    own = getattr(thresholds, "channel_snr_db", None)
    w = (report or {}).get("worst_channel")
    if limit is None or not w or w["err_db"] <= limit:
        return []
    snr = w.get("snr_db")  # None in reports written before the own-SNR condition: the first limit alone
    if own is not None and snr is not None and snr >= own:
        return []
    why = "" if snr is None else f", {snr:.1f} dB under its own signal < {own:g} dB"
    return [f"layer {w['layer']} (operator {w['index']}) channel {w['channel']}: error {w['err_db']:.1f} dB of the "
            f"layer's mean channel power > {limit:g} dB{why} (a broken channel; quantization noise is far lower)"]
