"""Puts the project's lab/ and module_utils/ on sys.path for the tests, and makes ansible.module_utils.offload_*
the module_utils module of the same plain name."""
import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for sub in ("lab", "module_utils", "lab/services/flows"):
    sys.path.insert(0, str(ROOT / sub))


class ModuleUtilsAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`ansible.module_utils.offload_x` (how library modules import it, as AnsiballZ bundles it) is the very module
    object `offload_x` (how unit tests import it): one module, whatever the name or order, so the classes a library
    module catches are the ones a test raises."""

    PREFIX = "ansible.module_utils."

    def find_spec(self, fullname, path=None, target=None):
        name = fullname[len(self.PREFIX):]
        if fullname.startswith(self.PREFIX) and name.startswith("offload_") and (ROOT / "module_utils" / f"{name}.py").exists():
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(spec.name[len(self.PREFIX):])

    def exec_module(self, module):
        """Already executed under its plain name."""


sys.meta_path.insert(0, ModuleUtilsAlias())


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "beside_the_lab: read-only (or on their own objects) and robust to faults injected meanwhile - "
                   "`make test` runs them in a second process beside the fault tests, which share one lab")
    config.addinivalue_line(
        "markers", "on_a_twin: mostly waiting (real timeouts, a lab rebuild) and written for the lab through LabConfig "
                   "and host k2-lab only (no literal names or ports) - `make test` runs them on twin d standing in "
                   "for the lab (tests/run_on_twin.py), beside the rest")
