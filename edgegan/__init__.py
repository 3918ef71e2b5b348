"""edgegan: distil GAN generators into tiny students and ship them to the edge.

Importing this package is cheap and torch-free; the heavy modules import torch themselves.
"""

__version__ = "0.1.0"

from edgegan.errors import EdgeganError  # noqa: E402

__all__ = ["EdgeganError", "__version__"]
