"""Image-to-image generators through export (issue 21): super-resolution, colourisation, inpainting.

**The file.** One input, images float32 in [-1, 1], and one output, images float32 in [-1, 1] ``scale``
times larger per side (``edgegan_runtime.contract``'s ``input`` entry records kind, layout, shape,
channels, size, ``multiple``, task and the 8-bit rule; the output entry its channels and scale). Its
layout and sizes are its format's row of the format table (``FormatSpec.image_layout``,
``image_dynamic_size``):

* ONNX: NCHW (B, C, h, w) -> (B, C', h·s, w·s), batch, height and width all dynamic: the generator is
  fully convolutional, so one file serves a phone's camera size and a desktop's. Its sides must be
  multiples of ``multiple`` (2^n_down: the stride-2 stages); the exporter checks parity at
  ``--input-size`` and at one more size (``second_size``: taller and wider by ``multiple`` and
  2·``multiple``, not square), so a file whose graph hard-coded a size fails here.
* TFLite: NHWC (B, h, w, C) -> (B, H, W, C') at the one ``--input-size`` (TFLite's interpreters want
  static shapes, and NHWC is their layout: litert-torch then writes no TRANSPOSE, measured: CONV_2D,
  DEPTHWISE_CONV_2D, RESIZE_NEAREST_NEIGHBOR, ADD, TANH for ``mobile_i2i``), one signature per batch.

**Real inputs.** Parity and int8 calibration run on what a deployed model is fed: the run's task
(``edgegan.tasks``: the image downscaled, its luma, a hole cut) applied to images of its dataset
(``--dataset``, else the run's ``dataset`` or ``distill.dataset`` record), at the export size (the
dataset loader resizes when its files are another size, and the entry records it). Parity uses the
first images of the test split, calibration the first of the train split; random parts of a task
(inpaint's hole) are drawn from ``torch.Generator`` seeded by ``--seed`` (parity) and ``--seed`` + 1
(calibration). Uniform noise would calibrate activation ranges no photograph reaches. A run that
records no dataset, exported without ``--dataset``, is refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from edgegan.errors import ConfigError, ExportError

if TYPE_CHECKING:
    import torch

    from edgegan.checkpoint import LoadedRun
    from edgegan.export.formats import ExportOptions, FormatSpec

INPUT_NAME = "image"  # the ONNX input; its output is ``onnx_export.OUTPUT_NAME`` ("images"), as a latent file's
SECOND_N = 16  # images of the second size a dynamic-size (ONNX) file's parity runs on
MAX_DYNAMIC_SIDE = 4096  # the largest input side an ONNX file's dynamic height and width admit
IMAGE_OPTIONS = ("input_size", "dataset", "data_dir")  # ExportOptions fields only an image-to-image run takes


@dataclass(frozen=True)
class ImageInput:
    """What an image-to-image file takes and returns, and where its real inputs come from."""

    channels: int  # input channels (1 grey, C + 1 for inpaint's mask)
    out_channels: int
    size: tuple[int, int]  # (h, w) of the input the file is exported (and checked) at
    multiple: int  # the input's sides must divide by this
    scale: int  # output side / input side
    task: str | None  # edgegan.tasks name; None: the input is an image as it is
    dataset: str  # the dataset whose images make the inputs
    data_dir: str | None
    layout: str  # the file's, from the format's row (``FormatSpec.image_layout``)
    dynamic: bool  # whether the file takes any multiple of ``multiple`` (``FormatSpec.image_dynamic_size``)

    def out_size(self, size: tuple[int, int] | None = None) -> tuple[int, int]:
        h, w = size or self.size
        return h * self.scale, w * self.scale

    def second_size(self) -> tuple[int, int]:
        """The second size an ONNX file is checked at: taller by ``multiple``, wider by twice that."""
        h, w = self.size
        return h + self.multiple, w + 2 * self.multiple

    def sample(self, batch: int) -> tuple["torch.Tensor"]:
        """Zeros to trace the prepared module with, in the file's layout."""
        import torch

        h, w = self.trace_size()
        shape = (batch, self.channels, h, w) if self.layout == "NCHW" else (batch, h, w, self.channels)
        return (torch.zeros(shape, dtype=torch.float32),)

    def trace_size(self) -> tuple[int, int]:
        """The export size, or for a dynamic file at least two ``multiple`` a side (a dimension of 1 is
        specialised away by the tracer)."""
        if not self.dynamic:
            return self.size
        return max(self.size[0], 2 * self.multiple), max(self.size[1], 2 * self.multiple)

    def dynamic_shapes(self) -> dict[str, dict[int, Any]]:
        """torch.export's dynamic shapes of a dynamic (ONNX) file: batch, and height and width as multiples of
        ``multiple`` (derived dimensions, so the file's dims read e.g. ``4*h``)."""
        import torch

        from edgegan.export.onnx_export import MAX_BATCH

        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        m = self.multiple
        h = torch.export.Dim("h", min=1, max=MAX_DYNAMIC_SIDE // m)
        w = torch.export.Dim("w", min=1, max=MAX_DYNAMIC_SIDE // m)
        return {INPUT_NAME: {0: batch, 2: m * h if m > 1 else h, 3: m * w if m > 1 else w}}

    def test_shapes(self) -> dict[str, list[int]]:
        """onnxsim's check inputs: batch 2 at the trace size."""
        return {INPUT_NAME: [2, self.channels, *self.trace_size()]}

    def contract_input(self) -> dict[str, Any]:
        from edgegan_runtime import contract

        return contract.image_input_entry(channels=self.channels, size=self.size, multiple=self.multiple,
                                          task=self.task, layout=self.layout, dynamic=self.dynamic)

    def to_file(self, x: np.ndarray) -> np.ndarray:
        """NCHW images in the file's layout."""
        return x if self.layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))


# ------------------------------------------------------------------------------------ from a run

def check_latent_options(opts: ExportOptions) -> None:
    """A run that takes latents refuses the options only an image-to-image run takes (never silently dropped)."""
    for name in IMAGE_OPTIONS:
        if getattr(opts, name) is not None:
            raise ConfigError(f"--{name.replace('_', '-')} applies to image-to-image runs (issue 21); this run's "
                              "generator takes latents")


def of_run(loaded: LoadedRun, opts: ExportOptions) -> ImageInput | None:
    """The image input of ``loaded``'s file, or None when its generator takes latents; ConfigError for an
    ``--input-size`` its network cannot take or a run that names no dataset (without ``--dataset``)."""
    rec = loaded.input
    if rec is None:
        check_latent_options(opts)
        return None
    if rec.get("kind") != "image":
        raise ExportError(f"{loaded.run_dir}: the manifest's model input is of kind {rec.get('kind')!r}; "
                          "export takes latent and image generators")
    c, th, tw = (int(v) for v in rec["shape"])
    oc, oh, ow = (int(v) for v in loaded.output_shape)
    if oh % th or ow % tw or oh // th != ow // tw:
        raise ExportError(f"{loaded.run_dir}: the manifest maps inputs {th}x{tw} to outputs {oh}x{ow}, not a whole "
                          "scale")
    m = int(rec.get("multiple") or 1)
    h, w = opts.input_size if opts.input_size is not None else (th, tw)
    if h % m or w % m:
        near = f"{max(m, h // m * m)}x{max(m, w // m * m)}"
        raise ConfigError(f"--input-size {h}x{w}: this generator takes sides that are multiples of {m} (its stride-2 "
                          f"stages), e.g. {near}")
    name, data_dir = dataset_of(loaded.manifest, opts)
    return ImageInput(channels=c, out_channels=oc, size=(h, w), multiple=m, scale=oh // th, task=rec.get("task"),
                      dataset=name, data_dir=data_dir, layout=opts.spec.image_layout,
                      dynamic=opts.spec.image_dynamic_size)


def dataset_of(manifest: dict[str, Any], opts: ExportOptions) -> tuple[str, str | None]:
    """(dataset, its folder): ``--dataset``, else the one the run was trained on (a teacher's ``dataset``) or
    distilled with (a student's ``distill.dataset``); ``--data-dir``, else (for the run's dataset) the run's own."""
    if opts.dataset is not None:
        return opts.dataset, opts.data_dir
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    for rec in (manifest.get("dataset"), (manifest.get("distill") or {}).get("dataset")):
        if isinstance(rec, dict) and rec.get("name"):
            return str(rec["name"]), opts.data_dir if opts.data_dir is not None else config.get("data_dir")
    raise ConfigError("the run records no dataset, and an image-to-image file is checked and calibrated on real "
                      "images: pass --dataset NAME (and --data-dir if its files are not under $EDGEGAN_DATA)")


# ------------------------------------------------------------------------------------ real inputs

def task_inputs(image: ImageInput, *, split: str, size: tuple[int, int], count: int,
                seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """(float32 (count, C, h, w) NCHW, their record): the task's inputs made from the first ``count`` images
    of ``split`` at the output size of ``size``; ConfigError where the dataset cannot give them."""
    import torch

    from edgegan.data import load_dataset
    from edgegan.tasks import get_task

    H, W = image.out_size(size)
    try:
        ds = load_dataset(image.dataset, data_dir=image.data_dir, split=split, image_size=(H, W), limit=count)
    except ConfigError as e:
        raise ConfigError(f"{image.dataset} images of {H}x{W} for inputs of {size[0]}x{size[1]}: {e}") from None
    if len(ds) < count:
        raise ConfigError(f"dataset {image.dataset} split {split} has {len(ds)} images; the export needs {count}")
    if ds.shape[0] != image.out_channels:
        raise ConfigError(f"dataset {image.dataset} has {ds.shape[0]}-channel images; this generator makes "
                          f"{image.out_channels}-channel images: pass a --dataset of its kind")
    x = torch.from_numpy(np.ascontiguousarray(ds.images))
    if image.task is None:
        if image.scale != 1 or image.channels != image.out_channels:
            raise ConfigError("the run records no task, so its inputs cannot be made from a dataset's images")
        inputs = x
    else:
        inputs = get_task(image.task).input(x, torch.Generator().manual_seed(seed))
    out = np.ascontiguousarray(inputs.numpy(), dtype=np.float32)
    want = (count, image.channels, *size)
    if out.shape != want:
        raise ExportError(f"task {image.task} made inputs {list(out.shape)} from {image.dataset}; the file takes "
                          f"{list(want)}")
    record = {"dataset": image.dataset, "split": split, "first": count, "task": image.task, "seed": seed,
              "size": list(size), **({"resized": ds.describe()["resized"]} if ds.resized else {}),
              "sha256": ds.sha256}
    return out, record


# --------------------------------------------------------------------------- the exporter's steps

class ImageFile:
    """The steps of ``exporter._export`` that depend on what the file takes, for an image-to-image
    generator (the latent twin is ``latents.LatentFile``)."""

    latent_dim = None

    def __init__(self, image: ImageInput):
        self.image = image
        self._runs: tuple[dict[str, np.ndarray], dict[str, Any]] | None = None

    def load(self, opts: ExportOptions) -> None:
        """Read the parity inputs now, before any conversion: a dataset that cannot give them (missing, of
        another channel count) fails in a second, not after the converter has run."""
        self._runs = self._parity_inputs(opts)

    def _parity_inputs(self, opts: ExportOptions) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The task's test-split inputs of each parity run (see ``parity``) and their record."""
        from edgegan.export.formats import PARITY_N

        im = self.image
        n = max(PARITY_N, *(opts.batches or (1,)))
        x, rec = task_inputs(im, split="test", size=im.size, count=n, seed=opts.seed)
        runs = {"all": x[:PARITY_N] if opts.batches is None else x}
        for b in opts.batches or (1,):
            runs[f"batch_{b}"] = x[:b]
        if im.dynamic:
            h2, w2 = im.second_size()
            runs[f"size_{h2}x{w2}"], rec2 = task_inputs(im, split="test", size=(h2, w2), count=SECOND_N, seed=opts.seed)
            rec = {**rec, "second": rec2}
        return runs, rec

    def probe(self, reference: Any) -> tuple[int, ...]:
        """The output (C, H, W) for inputs of the export size; checks the module honours the file contract."""
        import torch

        im = self.image
        x = torch.zeros(2, im.channels, *im.size)
        try:
            with torch.no_grad():
                y = reference(x)
        except Exception as e:
            raise ExportError(f"generator does not accept images (B, {im.channels}, {im.size[0]}, {im.size[1]}): "
                              f"{type(e).__name__}: {e}") from e
        want = (2, im.out_channels, *im.out_size())
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != want:
            got = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ExportError(f"generator makes {got} from images {[2, im.channels, *im.size]}; the manifest says "
                              f"{list(want)}")
        return tuple(want[1:])

    def prepare(self, reference: Any, spec: FormatSpec) -> tuple[Any, dict[str, int]]:
        from edgegan.export.prepare import prepare_for_export

        return prepare_for_export(reference, rewrite_convt=spec.rewrite_convt, image_layout=self.image.layout)

    def calibration(self, opts: ExportOptions) -> tuple[np.ndarray | None, dict[str, Any] | None]:
        """Calibration images for static precisions (train split, seed + 1), in the file's layout."""
        from edgegan.export.formats import CALIBRATION_BATCH, CALIBRATION_SEED_OFFSET

        if opts.calibration_count is None:
            return None, None
        x, rec = task_inputs(self.image, split="train", size=self.image.size, count=opts.calibration_count,
                             seed=opts.seed + CALIBRATION_SEED_OFFSET)
        return self.image.to_file(x), {"count": opts.calibration_count, "batch": CALIBRATION_BATCH,
                                       "seed": opts.seed + CALIBRATION_SEED_OFFSET, "distribution": "task inputs",
                                       "inputs": rec}

    def contract(self, batches: list[int] | None, identity: dict[str, Any]) -> dict[str, Any]:
        from edgegan_runtime import contract

        im = self.image
        return contract.make_image_contract(input=im.contract_input(), out_channels=im.out_channels, scale=im.scale,
                                            batch_sizes=batches, identity=identity)

    def metadata(self, identity: dict[str, Any], opts: ExportOptions, out_shape: tuple[int, ...]) -> dict[str, str]:
        from edgegan_runtime import contract

        im = self.image
        c = self.contract(list(opts.batches) if opts.batches is not None else None, identity)
        return {"edgegan.stem": identity["stem"], "edgegan.input": f"{im.layout} images in [-1, 1] ({im.task})",
                "edgegan.output": f"{im.layout} images x{im.scale} in [-1, 1]",
                contract.METADATA_NAME: contract.encode(c).decode()}

    def parity(self, path: Path, reference: Any, opts: ExportOptions,
               kernel_reference: Callable[[np.ndarray], np.ndarray] | None) -> dict[str, Any]:
        """Through the runtime on the task's test-split inputs: all of them (``all``), each signature's batch
        (TFLite) or batch 1 and ``SECOND_N`` inputs of the second size (ONNX)."""
        import torch

        from edgegan.export import parity

        runs, rec = self._runs if self._runs is not None else self._parity_inputs(opts)

        def ref(inputs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return reference(torch.from_numpy(inputs)).float().numpy()

        section = parity.check_images(path, ref, runs, thresholds=opts.precision.thresholds,
                                      kernel_reference=kernel_reference)
        return {"n": len(runs["all"]), "seed": opts.seed, "inputs": rec, **section}

    def entry_io(self, fields: dict[str, Any], out_shape: tuple[int, ...]) -> dict[str, Any]:
        """The manifest entry's ``input`` and ``output``: the contract's (shapes in the file's layout), and the
        dataset the inputs came from."""
        c = self.contract(None, {})
        return {"input": {**{k: v for k, v in c["input"].items() if k != "pixels"}, "dataset": self.image.dataset},
                "output": c["output"]}
