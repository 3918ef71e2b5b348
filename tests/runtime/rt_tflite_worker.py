"""tflite-runtime worker, run by test_runtime_tflite_runtime.py with the Python of the separate
tflite-runtime virtual environment (numpy < 2, no torch, no LiteRT). Reads a JSON job on stdin:
``{"latents": path.npy, "files": {precision: path}}``; for each file it loads it with
``backend="tflite-runtime"`` and saves the images next to it (``<file>.tflite-runtime.npy``), or, for
a precision the registry says this backend refuses, checks that the refusal is a typed error raised
before any interpreter is built and records what the interpreter itself would have said.
Prints one JSON report on the last line of stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "runtime"))  # this checkout's runtime


def main() -> None:
    sys.modules["torch"] = None  # type: ignore[assignment]  # the runtime must not need it
    import numpy as np
    import tflite_runtime
    import tflite_runtime.interpreter as native

    import edgegan_runtime as rt
    from edgegan_runtime.backend import BACKENDS

    job = json.loads(sys.stdin.read())
    z = np.load(job["latents"])
    spec = BACKENDS["tflite-runtime"]
    report = {"numpy": np.__version__, "tflite_runtime": tflite_runtime.__version__,
              "backends": rt.backends(), "files": {}}
    for precision, path in job["files"].items():
        out: dict = {}
        if spec.refusal(precision) is None:
            with rt.load(path, backend="tflite-runtime") as g:
                out["backend"] = g.backend
                np.save(path + ".tflite-runtime.npy", g.generate_from(z))
            with rt.load(path) as g:  # chosen without asking: the only TFLite backend here
                out["auto"] = g.backend
            out["ran"] = True
        else:
            real = native.Interpreter

            def boom(*a, **k):
                raise AssertionError("native code reached")

            native.Interpreter = boom
            try:
                for backend in ("tflite-runtime", None):
                    try:
                        rt.load(path, backend=backend)
                        out[f"refused_{backend}"] = None
                    except rt.RuntimeModelError as e:
                        out[f"refused_{backend}"] = f"{type(e).__name__}: {e}"
            finally:
                native.Interpreter = real
            try:  # what the interpreter says without the refusal: the reason the registry gives
                interp = native.Interpreter(model_path=path)
                interp.allocate_tensors()
                out["native"] = None
            except Exception as e:  # noqa: BLE001 - recorded for the test to read
                out["native"] = f"{type(e).__name__}: {e}"
            out["ran"] = False
        report["files"][precision] = out
    print(json.dumps(report))


if __name__ == "__main__":
    main()
