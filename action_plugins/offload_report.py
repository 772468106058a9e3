# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""offload_report: write a run's report on the control node, in the controller's own process (docs:
library/offload_report.py). ansible.builtin.copy would start its stat and copy modules for each report, about
a second each time; every playbook writes one or two."""
from __future__ import annotations

import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# The options documented in library/offload_report.py (tests/unit/test_module_docs.py holds them together).
ARGUMENT_SPEC = {
    "content": {"type": "str", "required": True},
    "dest": {"type": "path", "required": True},
    "mode": {"type": "str", "default": "0600"},
}
DIRECTORY_MODE = 0o700


def write_report(dest: str, content: str, mode: int) -> int:
    """Create the directory (0700) if needed, then replace `dest` atomically: a reader never sees half a report.
    Returns the bytes written."""
    directory = os.path.dirname(dest) or "."
    os.makedirs(directory, mode=DIRECTORY_MODE, exist_ok=True)
    data = content.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(dest)}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except OSError:
        os.unlink(tmp)
        raise
    return len(data)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # runs on the control node only

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        dest = args["dest"]
        try:
            mode = int(args["mode"], 8)
        except ValueError:
            raise AnsibleActionFail(f"mode must be octal, e.g. 0600, got {args['mode']!r}.") from None
        if not dest or dest.endswith(os.sep) or os.path.isdir(dest):
            raise AnsibleActionFail(f"dest must name the report file, got {dest!r}.")
        try:
            size = write_report(dest, args["content"], mode)
        except OSError as exc:
            raise AnsibleActionFail(f"Cannot write the report {dest}: {exc.strerror or exc}"
                                    f"{f' ({exc.filename})' if exc.filename and exc.filename != dest else ''}.") from None
        # The report is the run's output, not a change to the stack: never "changed", the same in check mode.
        result.update(changed=False, dest=dest, size=size)
        return result
