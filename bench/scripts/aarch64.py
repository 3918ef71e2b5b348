"""Run a bench bundle on aarch64 by emulation: an arm64 Debian root filesystem under qemu-user.

    python bench/scripts/aarch64.py setup                 # build and cache the rootfs and the aarch64 wheels
    python bench/scripts/aarch64.py run RUN [--record]    # bundle RUN, run it under qemu, compare with this x86 run

This proves that the bundle and the runtime *work* on aarch64 and make the same images as x86. Its
timings are qemu's translation of ARM code on an x86 host: they are labelled ``emulated`` everywhere
and are never device latency.

The recipe (issue 12, each step measured on this host):

* Debian's ``qemu-user-static`` 7.2 and ``debootstrap --arch=arm64 --foreign --variant=minbase
  --include=python3``; binfmt_misc is not mounted here, so debootstrap's second stage cannot run.
  Instead every downloaded .deb is unpacked by hand (``dpkg-deb --fsys-tarfile | tar -x
  --keep-directory-symlink``, which keeps bookworm's merged-/usr links) and qemu is called
  explicitly: ``qemu-aarch64-static -cpu neoverse-n1 -L ROOTFS ROOTFS/usr/bin/python3``.
* Python packages are aarch64 wheels unpacked by pip (``--platform ... --only-binary=:all:
  --no-deps --target``) at the versions this host runs, so both sides run the same code.
* qemu 7.2 shows the program the host's x86 /proc/cpuinfo; XNNPACK and onnxruntime then crash at CPU
  detection. ``-L`` looks up absolute paths in ROOTFS first, so an ARM cpuinfo matching the emulated
  CPU is written to ROOTFS/proc/cpuinfo.
* ``-cpu max`` advertises SME, and int8 TFLite outputs came out wrong (922 of 1,024 values off by up
  to 7 steps); ``-cpu neoverse-n1`` is bit-exact. The CPU is pinned to it.

Everything is cached under ``.cache/aarch64`` (ignored by git; ``EDGEGAN_AARCH64_CACHE`` moves it).
Only ``setup`` downloads; ``run`` and the tests use what is cached.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
PYTHON_VERSION = "3.11"  # bookworm's python3
QEMU = "qemu-aarch64-static"
QEMU_CPU = "neoverse-n1"  # not "max": its SME breaks int8 TFLite (see the module doc)
# pip installs with --no-deps: the packages each interpreter imports at run time besides numpy.
IMPORT_DEPS = {"tflite": (), "onnx": ("protobuf", "ml_dtypes", "typing_extensions")}
READY = ".edgegan-ready"

# What Linux shows for one Neoverse-N1 core (the part qemu emulates with -cpu neoverse-n1).
CPUINFO = """processor\t: {i}
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1
"""
CPU_LABEL = "ARM Neoverse-N1 (qemu-user emulated)"


class EmulationUnavailable(RuntimeError):
    """qemu, the cached rootfs or the wheels are missing (the message says which and how to fix it)."""


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEGAN_AARCH64_CACHE") or REPO / ".cache" / "aarch64")


def rootfs(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "rootfs"


def site_dir(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "site"


def qemu() -> str | None:
    return shutil.which(QEMU)


def unavailable_reason(cache: Path | None = None) -> str | None:
    """Why an emulated run cannot start now (None: it can). Never downloads anything."""
    cache = cache or cache_dir()
    if qemu() is None:
        return f"{QEMU} not found (apt-get install qemu-user-static)"
    if not (rootfs(cache) / READY).exists():
        return f"no cached arm64 rootfs at {rootfs(cache)} (python bench/scripts/aarch64.py setup)"
    if not (site_dir(cache) / READY).exists():
        return f"no cached aarch64 wheels at {site_dir(cache)} (python bench/scripts/aarch64.py setup)"
    return None


# ----------------------------------------------------------------------------------------- setup

def _mirror() -> str:
    """The Debian mirror apt already uses (deb.debian.org if none is found)."""
    for f in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split()
            if line.startswith("URIs:") and len(parts) > 1 and "security" not in parts[1]:
                return parts[1]
            if line.startswith("deb ") and "security" not in line:
                return next(p for p in parts[1:] if p.startswith("http"))
    return "http://deb.debian.org/debian"


def build_rootfs(cache: Path | None = None) -> Path:
    """debootstrap's first stage, then every .deb unpacked by hand; cached (READY marks a finished one)."""
    target = rootfs(cache)
    if (target / READY).exists():
        return target
    if shutil.which("debootstrap") is None:
        raise EmulationUnavailable("debootstrap not found (apt-get install debootstrap)")
    work = target.with_name(target.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    subprocess.run(["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase", "--include=python3", SUITE,
                    str(work), _mirror()], check=True, stdout=subprocess.DEVNULL)
    debs = sorted((work / "var/cache/apt/archives").glob("*.deb"))
    if not debs:
        raise EmulationUnavailable(f"debootstrap downloaded no packages into {work}")
    for deb in debs:
        dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "--keep-directory-symlink", "-C", str(work)], stdin=dpkg.stdout, check=True)
        if dpkg.wait() != 0:
            raise EmulationUnavailable(f"dpkg-deb could not read {deb.name}")
    for deb in debs:  # the archives are not needed once unpacked
        deb.unlink()
    cores = os.cpu_count() or 1
    proc = work / "proc"
    if proc.is_symlink():  # debootstrap links proc -> /proc where it cannot mount; never write through it
        proc.unlink()
    proc.mkdir(exist_ok=True)
    (work / "proc/cpuinfo").write_text("\n".join(CPUINFO.format(i=i) for i in range(cores)))
    if not (work / "usr/bin/python3").exists():
        raise EmulationUnavailable("the rootfs has no usr/bin/python3 after unpacking")
    (work / READY).write_text(json.dumps({"suite": SUITE, "packages": len(debs),
                                          "seconds": round(time.perf_counter() - t0, 1)}))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(work, target)
    log.info("arm64 rootfs ready at %s (%d packages, %.0f s)", target, len(debs), time.perf_counter() - t0)
    return target


def wheel_requirements(formats: tuple[str, ...] = ("tflite", "onnx")) -> list[str]:
    """numpy and each format's interpreter (as a bundle names them), at the versions installed on this host."""
    from edgegan.app.bundle import INTERPRETERS

    names = ["numpy"] + [n for f in formats for n in (*INTERPRETERS[f], *IMPORT_DEPS[f])]
    out = []
    for n in dict.fromkeys(names):
        try:
            out.append(f"{n}=={metadata.version(n)}")
        except metadata.PackageNotFoundError:
            log.warning("%s is not installed on this host; not fetched for aarch64", n)
    return out


def _platforms() -> tuple[str, ...]:
    from edgegan.app.bundle import TARGETS

    return TARGETS["aarch64"].wheel_platforms


def install_wheels(cache: Path | None = None, requirements: list[str] | None = None) -> Path:
    """aarch64 wheels unpacked into the cache's site dir by pip (downloads; cached)."""
    target = site_dir(cache)
    if (target / READY).exists():
        return target
    reqs = requirements or wheel_requirements()
    work = target.with_name(target.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(work), "--only-binary=:all:",
           "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    for p in _platforms():
        cmd += ["--platform", p]
    subprocess.run(cmd + reqs, check=True)
    (work / READY).write_text(json.dumps({"requirements": reqs, "platforms": list(_platforms())}))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(work, target)
    return target


def setup(cache: Path | None = None) -> None:
    if qemu() is None:
        raise EmulationUnavailable(f"{QEMU} not found (apt-get install qemu-user-static)")
    build_rootfs(cache)
    install_wheels(cache)


# ------------------------------------------------------------------------------------------- run

def python_command(cache: Path | None = None) -> list[str]:
    """The command line that runs the rootfs's python3 under qemu (append the script and its arguments)."""
    root = rootfs(cache)
    return [qemu() or QEMU, "-cpu", QEMU_CPU, "-L", str(root), str(root / "usr/bin/python3")]


def run_bundle(bundle: str | os.PathLike, *, out: str | os.PathLike, cache: Path | None = None,
               runs: int | None = None, timeout: float = 1800, extra: list[str] | None = None) -> dict[str, Any]:
    """Unpack ``bundle`` into a temporary folder and run its script with the emulated python3.

    Returns the device-results JSON the script wrote to ``out`` (labelled emulated). Raises
    EmulationUnavailable when qemu or the cache is missing, RuntimeError when the script fails."""
    why = unavailable_reason(cache)
    if why:
        raise EmulationUnavailable(why)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="edgegan-aarch64-") as tmp:
        with tarfile.open(bundle) as tf:
            tf.extractall(tmp, filter="data")
        (top,) = [p for p in Path(tmp).iterdir() if p.is_dir()]
        cmd = python_command(cache) + [str(top / "run_bench.py"), "--out", str(out), "--emulated", CPU_LABEL]
        if runs is not None:
            cmd += ["--runs", str(runs)]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": str(site_dir(cache)),
               "PYTHONDONTWRITEBYTECODE": "1", "HOME": tmp}
        r = subprocess.run(cmd + (extra or []), capture_output=True, text=True, timeout=timeout, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"the bundle failed under qemu (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(out.read_text())


def machine_facts() -> dict[str, Any]:
    qv = subprocess.run([qemu() or QEMU, "--version"], capture_output=True, text=True).stdout.splitlines()
    return {"host_cpu": _host_cpu(), "host_cores": os.cpu_count(), "host_platform": platform.platform(),
            "host_load_1min": round(os.getloadavg()[0], 2),
            "qemu": qv[0] if qv else None, "qemu_cpu": QEMU_CPU, "rootfs": f"Debian {SUITE} arm64 (minbase + python3)"}


def _host_cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def record(run: str, *, results_dir: Path, runs: int | None = None, cache: Path | None = None) -> dict[str, Any]:
    """Bundle ``run``, run it emulated and on this host, write ``aarch64-emulated.{json,md}``."""
    from edgegan.app.bundle import make_bundle, run_bundle_here
    from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso

    with tempfile.TemporaryDirectory(prefix="edgegan-bundle-") as tmp:
        b = make_bundle(run, out=Path(tmp) / "bundle.tar.gz", target="aarch64")
        t0 = time.perf_counter()
        emulated = run_bundle(b["path"], out=Path(tmp) / "aarch64.json", cache=cache, runs=runs)
        seconds = round(time.perf_counter() - t0, 1)
        host = run_bundle_here(b["path"], out=Path(tmp) / "x86.json", runs=runs)
    doc = {"schema": "edgegan.aarch64-emulated/1", "created": now_iso(), "run": str(run),
           "label": "emulated (qemu-user): timings are NOT device latency",
           "machine": machine_facts(), "seconds": seconds, "bundle": {k: b[k] for k in ("bytes", "files")},
           "emulated": emulated, "host": host}
    results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(results_dir / "aarch64-emulated.json", doc)
    atomic_write_bytes(results_dir / "aarch64-emulated.md", to_markdown(doc).encode())
    return doc


def to_markdown(doc: dict[str, Any]) -> str:
    mc, em, host = doc["machine"], doc["emulated"], doc["host"]
    hv = {m["name"]: m for m in host["models"]}
    lines = [f"# aarch64 by emulation ({doc['created']})", "",
             "**Emulated.** The bundle ran in an arm64 Debian root filesystem under qemu-user on an x86-64 host. "
             "This proves that it runs on aarch64 and makes the same images as x86; the timings are qemu's, "
             "**not device latency** (docs/boards-and-web.md, \"On a board\", estimates real boards from the x86 numbers).", "",
             f"Host: {mc['host_cpu']}, {mc['host_cores']} cores, {mc['host_platform']}. {mc['qemu']}, "
             f"`-cpu {mc['qemu_cpu']}`; {mc['rootfs']}; emulated python {em['python']}, versions "
             + ", ".join(f"{k} {v}" for k, v in em["versions"].items()) + f". Run {doc['run']}; "
             f"whole emulated run {doc['seconds']} s. The x86 column is this host at the same moment (load "
             f"{mc.get('host_load_1min', '?')} on {mc['host_cores']} shared cores: noisy; bench/results/runtime.md "
             "has quiet numbers).", "",
             "| model | backend | images vs x86: max abs diff (float) | bit-exact | pixels differing | threshold | "
             "emulated p50 µs (not device latency) | x86 p50 µs | emulated ÷ x86 |",
             "|---|---|---:|---|---:|---|---:|---:|---:|"]
    for m in em["models"]:
        par, lat = m.get("parity") or {}, m.get("latency") or {}
        x86 = (hv.get(m["name"]) or {}).get("latency") or {}
        status = m.get("error") or ("passed" if par.get("passed") else "FAILED")
        lines.append(f"| {m['name']} | {m.get('backend', '—')} | {_g(par.get('max_abs'))} | "
                     f"{'yes' if par.get('bit_exact') else 'no'} | "
                     f"{par.get('pixels_differing', '—')} of {par.get('pixels', '—')} | "
                     f"{par.get('threshold', '—')} ({status}) | {_g(lat.get('p50_us'), '.0f')} | "
                     f"{_g(x86.get('p50_us'), '.1f')} | {_ratio(lat.get('p50_us'), x86.get('p50_us'))} |")
    lines.append("")
    return "\n".join(lines)


def _ratio(a: Any, b: Any) -> str:
    return f"{a / b:.0f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0 else "—"


def _g(v: Any, spec: str = ".3g") -> str:
    return "—" if not isinstance(v, (int, float)) else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("setup", help="build and cache the arm64 rootfs and aarch64 wheels (downloads)")
    r = sub.add_parser("run", help="bundle a run and execute it under qemu")
    r.add_argument("run")
    r.add_argument("--runs", type=int, help="timed calls per model (default: the probe's own rule)")
    r.add_argument("--record", action="store_true", help="write bench/results/aarch64-emulated.{json,md}")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if a.cmd == "setup":
            setup()
            print(f"ready: {cache_dir()}")
            return 0
        results = REPO / "bench" / "results" if a.record else Path(tempfile.mkdtemp(prefix="edgegan-aarch64-"))
        doc = record(a.run, results_dir=results, runs=a.runs)
        print(to_markdown(doc))
        return 0 if all((m.get("parity") or {}).get("passed") for m in doc["emulated"]["models"]) else 1
    except EmulationUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
