"""edgegan-runtime: run exported edgegan generators with numpy and one interpreter. Never imports torch.

    import edgegan_runtime as rt
    g = rt.load("runs/student/manifest.json", export="tflite:int8")
    pixels = g.generate(16, seed=0)          # uint8 (16, H, W, C)
    images = g.generate_from(rt.latent(16, g.latent_dim, 0))   # float32 (16, C, H, W) in [-1, 1]
    pixels = c.generate(16, seed=0, label=7)  # a conditional generator (c.num_classes == K): class 7
    t = rt.load("runs/sr2x/exports/sr2x-tflite-int8.tflite")   # an image-to-image file (t.input_kind == "image")
    big = t.translate(small)                 # uint8 (H, W, C) -> uint8 (2H, 2W, C); batches (N, H, W, C) too

Every file is verified (size, type, sha256, structure) before a native interpreter sees it; every
failure is a ``RuntimeModelError`` subclass with a one-line message naming the file.
"""

__version__ = "0.1.0"

from edgegan_runtime.backend import backends  # noqa: E402
from edgegan_runtime.errors import (  # noqa: E402
    BackendError,
    BackendUnavailableError,
    FileReadError,
    ImageError,
    InputError,
    InputKindError,
    LabelError,
    ManifestError,
    ModelFileError,
    OutputError,
    PrecisionWarning,
    RuntimeModelError,
)
from edgegan_runtime.generator import Generator, load, to_pixels  # noqa: E402
from edgegan_runtime.labels import one_hot  # noqa: E402
from edgegan_runtime.latent import latent  # noqa: E402

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "FileReadError",
    "Generator",
    "ImageError",
    "InputError",
    "InputKindError",
    "LabelError",
    "ManifestError",
    "ModelFileError",
    "OutputError",
    "PrecisionWarning",
    "RuntimeModelError",
    "__version__",
    "backends",
    "latent",
    "load",
    "one_hot",
    "to_pixels",
]
