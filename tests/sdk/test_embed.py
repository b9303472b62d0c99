"""The C API from Python: host/embed/examples/embed.py drives
libfnhost_embed.so through ctypes (no compiled extension)."""
import subprocess
import sys

from conftest import ROOT, TARGET


def test_python_embeds_fnhost_through_ctypes():
    out = subprocess.run([sys.executable, str(ROOT / "host" / "embed" / "examples" / "embed.py"), str(TARGET)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "embed.py: all checks passed" in out.stdout, out.stdout
