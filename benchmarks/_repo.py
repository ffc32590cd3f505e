"""Puts the repository root on ``sys.path``: a benchmark run as a script (``python benchmarks/x.py``)
then finds ``recipes`` (the bundled model's corpus and evaluation, not shipped in the wheel)."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
