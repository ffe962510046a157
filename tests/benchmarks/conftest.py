"""Tests of the tooling in benchmarks/ (outside every wheel): its scripts are imported from the repository
path, which this file puts first on ``sys.path`` (``import speed``, ``import remote_load``, ...)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
