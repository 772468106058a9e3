"""Every module's DOCUMENTATION, EXAMPLES and RETURN are valid YAML with what ansible-doc needs (a colon in a
plain scalar silently breaks the docs, so this checks what ansible-doc does not)."""
from __future__ import annotations

import ast
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
    assert {"check_mode", "diff_mode"} <= set(doc["attributes"])
    assert doc.get("options"), f"{path.stem}: no options documented"  # else the loop below checks nothing
    for name, option in doc["options"].items():
        assert option.get("description"), f"{path.stem}: option {name} has no description"
    assert isinstance(docs["EXAMPLES"], list) and docs["EXAMPLES"]
    assert isinstance(docs["RETURN"], dict) and docs["RETURN"]
