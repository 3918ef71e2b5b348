"""Quality metrics: FID/IS in a domain classifier's feature space, Inception FID/IS, SWD, sharpness, fidelity."""
