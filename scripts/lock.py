"""Rewrites requirements.lock with a resolver (uv): every package, transitive ones included, that
the runtime, test and deploy requirements need together, pinned, each with the packages that pull
it in. `make install` installs exactly these versions into .venv; the image installs the runtime
and deploy sets under the same lock (no test tools).

    .venv/bin/python scripts/lock.py      (or: make lock)            re-resolve after editing a requirements file
    .venv/bin/python scripts/lock.py --upgrade                       also move unpinned packages to their newest release
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = ("requirements.txt", "requirements-test.txt", "requirements-deploy.txt")
HEADER = """\
# The lock: every package of requirements.txt + requirements-test.txt + requirements-deploy.txt,
# resolved together for Python 3.11 by `make lock` (uv pip compile). Do not edit by hand.
"""


def main() -> None:
    uv = Path(sys.executable).with_name("uv")
    lock = ROOT / "requirements.lock"
    cmd = [str(uv), "pip", "compile", *SETS, "--python-version", "3.11", "--no-header", "--annotation-style", "line", "-o", str(lock)]
    if "--upgrade" in sys.argv[1:]:
        cmd.append("--upgrade")
    subprocess.run(cmd, check=True, cwd=ROOT)
    text = lock.read_text()
    lock.write_text(HEADER + text)
    print(f"requirements.lock: {sum(1 for line in text.splitlines() if '==' in line.split('#')[0])} packages")


if __name__ == "__main__":
    main()
