"""Every module's DOCUMENTATION, EXAMPLES and RETURN are valid YAML with what ansible-doc needs (a colon in a
plain scalar silently breaks the docs, so this checks what ansible-doc does not)."""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

LIBRARY = Path(__file__).resolve().parents[2] / "library"
MODULES = sorted(LIBRARY.glob("offload_*.py"))


def _docs(path: Path) -> dict:
    tree = ast.parse(path.read_text())
    return {node.targets[0].id: yaml.safe_load(node.value.value) for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN")}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_docs_are_valid_yaml_and_complete(path):
    docs = _docs(path)
    assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    doc = docs["DOCUMENTATION"]
    assert doc["module"] == path.stem and doc["short_description"] and doc["description"]
    fragments = doc.get("extends_documentation_fragment") or []
    assert {"check_mode", "diff_mode"} <= set(doc.get("attributes") or {}) or {
        "offload.info_module", "offload.pure_logic"} & set(fragments), f"{path.stem}: no attributes"
    assert doc.get("options"), f"{path.stem}: no options documented"  # else the loop below checks nothing
    for name, option in doc["options"].items():
        assert option.get("description"), f"{path.stem}: option {name} has no description"
    assert isinstance(docs["EXAMPLES"], list) and docs["EXAMPLES"]
    assert isinstance(docs["RETURN"], dict) and docs["RETURN"]


# --- The rendered docs (ansible-doc, doc fragments included) against each module's real argument spec ---

ROOT = LIBRARY.parent


class _SpecCaptured(Exception):
    def __init__(self, kwargs):
        super().__init__("argument spec captured")
        self.kwargs = kwargs


def _argument_spec(path: Path) -> dict:
    """What the module hands to AnsibleModule: its main() runs until AnsibleModule is built, then stops. A module
    documented in library/ and run on the controller by its action plugin (no main()): the plugin's ARGUMENT_SPEC."""
    plugin = ROOT / "action_plugins" / path.name
    if plugin.exists():
        spec = importlib.util.spec_from_file_location(f"{path.stem}_action_under_test", plugin)
        action = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(action)
        return action.ARGUMENT_SPEC
    spec = importlib.util.spec_from_file_location(f"{path.stem}_docs_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def capture(*args, **kwargs):
        raise _SpecCaptured(kwargs)

    module.AnsibleModule = capture
    with pytest.raises(_SpecCaptured) as captured:
        module.main()
    return captured.value.kwargs["argument_spec"]


@pytest.fixture(scope="module")
def rendered() -> dict:
    """Every module's docs as ansible-doc renders them, fragments merged (ansible.cfg: doc_fragment_plugins)."""
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-doc"), "-t", "module", "--json", "-M",
                           str(LIBRARY), *[p.stem for p in MODULES]], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {name: entry["doc"] for name, entry in json.loads(proc.stdout).items()}


def _norm_default(option: dict):
    default = option.get("default")
    return None if default in (None, "") and option.get("type") == "str" else default


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_documented_options_are_the_argument_spec(path, rendered):
    doc = rendered[path.stem]
    spec = _argument_spec(path)
    documented = doc.get("options") or {}
    _same_options(path.stem, documented, spec)
    assert {"check_mode", "diff_mode"} <= set(doc["attributes"]), f"{path.stem}: attributes after the fragments"


def _same_options(where: str, documented: dict, spec: dict) -> None:
    """Names, types, required, choices and defaults alike; suboptions too."""
    assert set(documented) == set(spec), (f"{where}: documented only {sorted(set(documented) - set(spec))}, "
                                          f"undocumented {sorted(set(spec) - set(documented))}")
    for name, arg in spec.items():
        option = documented[name]
        assert option.get("type", "str") == arg.get("type", "str"), f"{where}.{name}: type"
        assert bool(option.get("required")) == bool(arg.get("required")), f"{where}.{name}: required"
        assert option.get("choices") == arg.get("choices"), f"{where}.{name}: choices"
        assert _norm_default(option) == _norm_default(arg), (f"{where}.{name}: default documented "
                                                             f"{option.get('default')!r}, spec {arg.get('default')!r}")
        if arg.get("options"):
            _same_options(f"{where}.{name}", option.get("suboptions") or {}, arg["options"])
