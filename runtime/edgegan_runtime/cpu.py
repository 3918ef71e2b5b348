"""What this CPU's integer kernels can be trusted with: used to warn, never to change results.

onnxruntime's U8S8 kernels (uint8 activations times int8 weights) multiply with ``vpmaddubsw`` on x86
CPUs without VNNI, and its 16-bit sums of two products saturate: an int8 ONNX file quantized that way
is accurate on an AVX-512 VNNI (or AVX-VNNI) CPU and visibly wrong on an AVX2-only one (issue #8).
aarch64 kernels widen before they add and are not affected. edgegan's exporter writes U8U8 files,
which run the same arithmetic everywhere; the runtime warns when it is handed a U8S8 file here.
"""

from __future__ import annotations

import platform
from pathlib import Path

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
_X86 = {"x86_64", "amd64", "i386", "i686", "x86"}


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (``cpuinfo`` for tests); None where unreadable."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def u8s8_saturates(machine: str | None = None, flags: frozenset[str] | None = None) -> bool:
    """True on x86 where VNNI is not known to be present (U8S8 int8 kernels may saturate)."""
    machine = (machine or platform.machine()).lower()
    if machine not in _X86:
        return False
    flags = cpu_flags() if flags is None else flags
    return not (flags and VNNI_FLAGS & flags)
