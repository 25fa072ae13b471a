"""The code base passes ruff with the project's configuration (pyproject.toml)."""

import shutil
import subprocess

from conftest import REPO


def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    assert ruff, "ruff is not installed (it is in the dev extra: run install.sh)"
    proc = subprocess.run([ruff, "check", "."], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
