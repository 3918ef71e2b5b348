"""edgegan-runtime: run exported edgegan generators with numpy and one interpreter. Never imports torch."""

__version__ = "0.1.0"

from edgegan_runtime.latent import latent  # noqa: E402

__all__ = ["latent", "__version__"]
