"""Run a library module's main() in-process, as ansible would (module args, check and diff mode), and get what it
exited with; the unit tests of the write modules fake their client boundary around it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


def load_module(name: str):
    """library/<name>.py as a fresh module object (its ansible.module_utils imports must already resolve)."""
    spec = importlib.util.spec_from_file_location(f"{name}_module_under_test", ROOT / "library" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(module, monkeypatch, args: dict, check_mode: bool = False, diff: bool = False) -> dict:
    """main() with `args`: its exit_json result, or its fail_json one with failed=True."""
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args

    def exit_json(self, **kwargs):
        raise ExitJson(kwargs)

    def fail_json(self, **kwargs):
        raise FailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    with patch_module_args({**args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}):
        try:
            module.main()
        except ExitJson as done:
            return done.args[0]
        except FailJson as failed:
            return {"failed": True, **failed.args[0]}
    raise AssertionError("main() returned without exit_json/fail_json")
