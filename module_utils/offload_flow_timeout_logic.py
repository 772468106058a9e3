# -*- coding: utf-8 -*-
# PRIVATE to library/offload_flow_timeout: find and change the task timeout literal of K2's flow file.
# Imported as ansible.module_utils.offload_flow_timeout_logic.
"""K2 keeps the offload task timeout as a literal in its flow file: inside the task function
`offload_table`, `subprocess.run([...], ..., timeout=600)`. The runbook's Scenario 5 mitigation A edits that
literal. The file is parsed (never pattern-matched) so that a comment, a log message or another call with a
timeout cannot be edited by mistake; anything but exactly one such literal is refused."""
from __future__ import annotations

import ast


class FlowFileError(Exception):
    """The flow file cannot be edited safely; the message names the file and the reason."""


def _is_subprocess_run(call: ast.Call) -> bool:
    func = call.func
    return isinstance(func, ast.Attribute) and func.attr == "run" and isinstance(func.value, ast.Name) \
        and func.value.id == "subprocess"


def find_timeout(source: bytes, function: str, name: str = "flow file") -> tuple[int, int, int]:
    """(value, start, end): the integer literal of `timeout=` in the one subprocess.run call of `function`,
    with its byte offsets in `source`."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        raise FlowFileError(f"{name} is not valid Python ({exc.__class__.__name__}: {exc}).") from exc
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == function]
    if len(functions) != 1:
        raise FlowFileError(f"{name}: expected one function {function!r}, found {len(functions)}.")
    literals = []
    for call in (n for n in ast.walk(functions[0]) if isinstance(n, ast.Call) and _is_subprocess_run(n)):
        for kw in call.keywords:
            if kw.arg == "timeout":
                literals.append(kw.value)
    if len(literals) != 1:
        raise FlowFileError(f"{name}: expected one subprocess.run(..., timeout=...) in {function}, "
                            f"found {len(literals)}.")
    node = literals[0]
    if not (isinstance(node, ast.Constant) and type(node.value) is int):
        raise FlowFileError(f"{name}: the timeout of subprocess.run in {function} is not an integer literal "
                            f"({ast.unparse(node)}); edit it by hand.")
    lines = source.splitlines(keepends=True)
    if node.lineno != node.end_lineno:
        raise FlowFileError(f"{name}: the timeout literal of {function} spans several lines; edit it by hand.")
    line_start = sum(len(line) for line in lines[:node.lineno - 1])
    # ast offsets are UTF-8 byte offsets within the line: right for a bytes source.
    return node.value, line_start + node.col_offset, line_start + node.end_col_offset


def set_timeout(source: bytes, function: str, seconds: int, name: str = "flow file") -> tuple[bytes, int]:
    """(new source, previous value). The new source is parsed again and must carry exactly the new value."""
    previous, start, end = find_timeout(source, function, name)
    updated = source[:start] + str(seconds).encode() + source[end:]
    if find_timeout(updated, function, name)[0] != seconds:  # pragma: no cover - defensive
        raise FlowFileError(f"{name}: the edited file does not carry timeout={seconds}.")
    return updated, previous
