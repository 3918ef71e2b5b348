"""What machine a benchmark ran on (recorded beside every result)."""

from __future__ import annotations

import os
import platform

# The instruction-set features that change what int8/fp32 kernels do (recorded with every result:
# the same file can run differently on an AVX2-only and an AVX-512 VNNI CPU, issue #8).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8",
             "asimd", "asimddp", "i8mm", "sve", "sve2")


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "machine": platform.machine(),
            "isa": isa(), "system": platform.system(), "python": platform.python_version()}


def isa() -> str:
    """The CPU's relevant instruction-set features, e.g. 'avx avx2 fma' ('unknown' where unreadable)."""
    from edgegan_runtime.cpu import cpu_flags

    flags = cpu_flags()
    return " ".join(f for f in ISA_FLAGS if f in flags) if flags else "unknown"
