"""Puts the project's lab/ and module_utils/ on sys.path for the tests."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for sub in ("lab", "module_utils", "lab/services/flows"):
    sys.path.insert(0, str(ROOT / sub))
