"""edgegan.quiet: the converters' native and third-party output kept for --debug, ours shown."""

import subprocess
import sys


def test_converters_quiet_captures_native_stderr_only():
    code = ("import logging, os, sys, warnings\n"
            "logging.basicConfig(level=logging.WARNING)\n"
            "from edgegan.quiet import converters_quiet\n"
            "with converters_quiet():\n"
            "    os.write(2, b'native line\\n')\n"
            "    print('python line', file=sys.stderr)\n"
            "    logging.getLogger('edgegan.x').warning('our warning')\n"
            "    logging.getLogger('torch.utils._pytree').warning('torch chatter')\n"
            "os.write(2, b'after the block\\n')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "python line" in r.stderr and "our warning" in r.stderr and "after the block" in r.stderr
    assert "native line" not in r.stderr and "torch chatter" not in r.stderr

