"""``edgegan-runtime``: generate sample grids, translate images and probe latency with only the runtime installed.

The library raises typed errors; this module alone turns them into one-line messages and exit
codes (0 ok, 1 a model/backend/input error, 2 bad usage, 3 a class label the model does not take:
``LabelError``, issue 20; 4 an image the model does not take, or a command of the other input kind:
``ImageError``, ``InputKindError``, issue 21).

This command stays on argparse (``edgegan`` uses click): the runtime's only dependency is numpy, and
click would be its second for four small commands on boards. Abbreviated options are refused, as
with click, so the command line stays stable for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from edgegan_runtime import __version__
from edgegan_runtime.errors import ImageError, InputKindError, LabelError, RuntimeModelError

LABEL_EXIT = 3  # a label the model does not take (none for a conditional model, one for an unconditional one, ...)
IMAGE_EXIT = 4  # an image the model does not take (channels, size, PNG), or generate/translate of the other kind


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="an .onnx / .tflite file, or a manifest.json / run directory")
    p.add_argument("--export", help="with a manifest: the export to load (file name or format:precision)")
    from edgegan_runtime.backend import BACKENDS

    p.add_argument("--backend", choices=list(BACKENDS), help="default: from the file and what is installed")
    from edgegan_runtime.generator import MAX_THREADS

    p.add_argument("--threads", type=_int_from(1, MAX_THREADS), default=1,
                   help=f"interpreter threads, 1 to {MAX_THREADS} (default 1)")


def _int_from(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high], refused with a one-line usage error otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is not in {low}..{high if high is not None else ''}")
        return value

    return parse


def _size(text: str) -> tuple[int, int]:
    """An argparse type: HxW (or S for SxS), each side 1 or more."""
    parts = text.lower().split("x")
    try:
        h, w = (int(parts[0]),) * 2 if len(parts) == 1 else (int(parts[0]), int(parts[1])) if len(parts) == 2 else ()
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"not a size HxW (e.g. 64x48): {text!r}") from None
    if min(h, w) < 1:
        raise argparse.ArgumentTypeError(f"sides must be >= 1: {text!r}")
    return h, w


def _int_list(text: str) -> list[int]:
    """An argparse type: comma-separated integers (``--labels 0,1,2``)."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgegan-runtime",
        description="Run exported edgegan generators (ONNX / TFLite): sample grids, verification, latency probe.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"edgegan-runtime {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="write a grid of generated images as PNG", allow_abbrev=False)
    _add_model_args(p)
    p.add_argument("-n", type=_int_from(1, MAX_GRID), default=None,
                   help=f"number of images, 1 to {MAX_GRID} (default 16, or one per --labels entry)")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    p.add_argument("--label", type=int, default=None, help="a conditional model: the class of every image, 0 to K-1")
    p.add_argument("--labels", type=_int_list, default=None,
                   help="a conditional model: one class per image, comma-separated (e.g. 0,1,2)")
    p.add_argument("--nrow", type=_int_from(1, MAX_GRID), default=None, help="images per row (default: square)")
    p.add_argument("-o", "--out", required=True, help="output PNG path (its folder must exist)")

    p = sub.add_parser("translate", help="an image-to-image model: translate PNG images, write PNG images",
                       allow_abbrev=False)
    _add_model_args(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG files (8-bit grey, RGB, RGBA or palette)")
    p.add_argument("-o", "--out", required=True,
                   help="output PNG path for one image, or an existing folder (each image keeps its file name); "
                        "an RGBA image whose alpha is all 255 goes to an RGB model as RGB, nothing else is converted")

    p = sub.add_parser("bench", help="measure load time, latency, throughput and peak memory", allow_abbrev=False)
    _add_model_args(p)
    p.add_argument("--batch", type=_int_from(1, 4096), default=1, help="images per call (default 1)")
    p.add_argument("--input-size", type=_size, default=None, metavar="HxW",
                   help="an image-to-image model that takes any size: the input size (default: the size it was "
                        "exported at)")
    p.add_argument("--runs", type=_int_from(1, 10**7), default=None, help="timed calls (default: >= 200, about 1 s)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("info", help="verify a model and print what it expects and returns (JSON)", allow_abbrev=False)
    _add_model_args(p)

    sub.add_parser("backends", help="list the backends installed here", allow_abbrev=False)
    return parser


MAX_GRID = 10_000  # images in one PNG grid


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "translate" and len(args.images) > 1:
        from pathlib import Path

        if not Path(args.out).is_dir():
            parser.error(f"{len(args.images)} images need -o to name an existing folder, not {args.out!r}")
    try:
        return _COMMANDS[args.command](args)
    except LabelError as e:
        from edgegan_runtime.text import one_line

        print(f"edgegan-runtime: error: {one_line(e)}", file=sys.stderr)
        return LABEL_EXIT
    except (ImageError, InputKindError) as e:
        from edgegan_runtime.text import one_line

        print(f"edgegan-runtime: error: {one_line(e)}", file=sys.stderr)
        return IMAGE_EXIT
    except RuntimeModelError as e:
        from edgegan_runtime.text import one_line

        print(f"edgegan-runtime: error: {one_line(e)}", file=sys.stderr)
        return 1
    except MemoryError:
        print("edgegan-runtime: error: out of memory", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgegan-runtime: interrupted", file=sys.stderr)
        return 130


def _generate(args: argparse.Namespace) -> int:
    from edgegan_runtime.generator import load
    from edgegan_runtime.png import check_output, grid, write_png

    out = check_output(args.out)  # before any work: a missing folder is a typo, and is not created
    g = load(args.model, backend=args.backend, threads=args.threads, export=args.export)
    if g.image is not None:
        raise InputKindError(f"{g.path}: this model translates images; use `edgegan-runtime translate MODEL in.png "
                             "-o out.png`")
    n = args.n if args.n is not None else len(args.labels) if args.labels is not None else 16
    images = g.generate(n, seed=args.seed, label=args.label, labels=args.labels)
    if images.shape[-1] == 2 or images.shape[-1] > 4:
        images = images[..., :1]  # PNG has no 2- or 5+-channel colour type; show the first channel
    path = write_png(out, grid(images, nrow=args.nrow), make_folders=False)
    classes = "" if args.label is None else f", class {args.label}"
    print(f"wrote {path} ({n} images, {g.backend}, seed {args.seed}{classes})")
    return 0


def _translate(args: argparse.Namespace) -> int:
    """Every image is read and every output path checked before the model is loaded; each image is translated
    alone (images may differ in size) and written atomically."""
    from pathlib import Path

    from edgegan_runtime.generator import load
    from edgegan_runtime.png import check_output, read_png, write_png

    from edgegan_runtime.errors import OutputError

    out = Path(args.out)  # several images with -o not a folder: refused by main as a usage error
    targets = [out / (Path(p).stem + ".png") if out.is_dir() else check_output(out) for p in args.images]
    for src, dst in zip(args.images, targets):
        if Path(src).resolve() == dst.resolve():
            raise OutputError(f"{dst}: would overwrite its input image; choose another -o")
    if len(set(targets)) != len(targets):
        raise OutputError(f"{out}: two images have the same file name; translate them into different folders")
    pixels = [read_png(p) for p in args.images]
    g = load(args.model, backend=args.backend, threads=args.threads, export=args.export)
    if g.image is None:
        raise InputKindError(f"{g.path}: this model generates images from latents; use `edgegan-runtime generate`")
    for src, dst, p in zip(args.images, targets, pixels):
        if p.shape[2] == 4 and g.image.channels == 3 and bool((p[:, :, 3] == 255).all()):
            p = p[:, :, :3]  # an opaque alpha channel holds nothing: RGB is the same image
        y = g.translate(p)
        write_png(dst, y[:, :, :1] if y.shape[2] == 2 or y.shape[2] > 4 else y, make_folders=False)
        print(f"wrote {dst} ({p.shape[0]}x{p.shape[1]} -> {y.shape[0]}x{y.shape[1]}, {g.backend})")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from edgegan_runtime.probe import bench, format_report

    r = bench(
        args.model, batch=args.batch, threads=args.threads, backend=args.backend, export=args.export, runs=args.runs,
        input_size=args.input_size,
    )
    print(json.dumps(r) if args.json else format_report(r))
    return 0


def _info(args: argparse.Namespace) -> int:
    from edgegan_runtime.generator import load

    g = load(args.model, backend=args.backend, threads=args.threads, export=args.export)
    im = g.image
    info = {
        "model": str(g.path),
        "format": g.format,
        "precision": g.precision,
        "backend": g.backend,
        "input_kind": g.input_kind,
        "latent_dim": g.latent_dim,
        **({} if im is None else {"input_shape": list(g.input_shape), "layout": im.layout, "scale": im.scale,
                                  "multiple": im.multiple, "size": list(im.size), "task": im.task}),
        "output_shape": list(g.output_shape),
        "batch_sizes": list(g.batch_sizes) if g.batch_sizes else None,
        "classes": None if g.num_classes is None else {"count": g.num_classes, "names": g.class_names},
        "bytes": g.bytes,
        "sha256": g.sha256,
    }
    print(json.dumps(info, indent=2))
    return 0


def _backends(args: argparse.Namespace) -> int:
    from edgegan_runtime.backend import BACKENDS, backend_version, is_available

    for name, spec in BACKENDS.items():
        ok = is_available(name)
        missing = f"missing: pip install 'edgegan-runtime[{spec.extra}]'"
        state = f"installed ({backend_version(spec)})" if ok else missing
        refuses = "".join(f"; refuses {p}" for p, _ in spec.refuses)
        print(f"{name:15} {'/'.join(spec.formats):7} {state}{refuses}")
    return 0


_COMMANDS = {"generate": _generate, "translate": _translate, "bench": _bench, "info": _info, "backends": _backends}


if __name__ == "__main__":
    sys.exit(main())
