"""What produced a model, beyond its data: the code version and the configuration, as short digests
a model card and a run's tags carry."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.config import Settings

CODE_VERSION_ENV = "DRIFTLOOP_CODE_VERSION"
ROOT = Path(__file__).resolve().parents[1]


def code_version() -> str:
    """The code that runs: ``$DRIFTLOOP_CODE_VERSION`` when the deployment sets it (an image built
    without ``.git``), else this checkout's git commit, marked ``-dirty`` when tracked files differ
    from it; ``unknown`` when neither says."""
    given = os.environ.get(CODE_VERSION_ENV)
    if given:
        return given
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def config_digest(settings: Settings) -> str:
    """A digest of the configuration as driftloop read it (defaults filled in, paths resolved):
    two runs with the same digest ran under the same settings, whatever the YAML file's comments
    or key order."""
    canonical = json.dumps(settings.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
