#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_flow_timeout
short_description: Set the offload task timeout in K2's flow file (runbook Scenario 5, mitigation A)
description:
  - K2's flow file (C(docker/offload/flows/iceberg_offload_flow.py) on the Docker host, mounted into the worker at
    C(/opt/prefect/flows)) holds the task timeout as a literal, C(subprocess.run([...], timeout=600)) inside the
    task function C(offload_table). This module sets that literal, for example 600 -> 1200 during a volume spike
    and back to 600 afterwards (the paired revert is the same module with the old value).
  - The file is parsed, not pattern-matched - exactly one integer C(timeout=) of a C(subprocess.run) call in
    O(function) must exist, otherwise nothing is changed and the error says what was found.
  - The file is replaced atomically, keeping its mode and owner, after an optional timestamped backup next to it.
  - The worker runs each flow run in a fresh process that reads the file again; the runbook still restarts the
    worker afterwards (role C(offload_timeout) does, only when this module changed the file).
version_added: "1.0.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: Reports the change and its diff; writes nothing.
  diff_mode:
    support: full
    details: The changed line, before and after.
  idempotent:
    support: full
options:
  path:
    description: The flow file on the Docker host.
    type: path
    required: true
  timeout:
    description: Seconds for the task timeout (K2 default 600; runbook mitigation A uses 1200).
    type: int
    required: true
  function:
    description: The task function whose C(subprocess.run) timeout is set.
    type: str
    default: offload_table
  backup:
    description: Keep a timestamped copy of the file before changing it (C(<path>.<pid>.<timestamp>~)).
    type: bool
    default: true
notes:
  - The Prefect deployment pulls its code from the worker's C(/opt/prefect/flows); a deployment that pulls from git
    would need the change committed there instead.
"""

EXAMPLES = r"""
- name: Raise the offload task timeout during a volume spike (runbook Scenario 5, option A)
  offload_flow_timeout:
    path: /opt/k2/docker/offload/flows/iceberg_offload_flow.py
    timeout: 1200
  register: flow_timeout

- name: Put the normal timeout back once the spike is over
  offload_flow_timeout:
    path: /opt/k2/docker/offload/flows/iceberg_offload_flow.py
    timeout: 600
"""

RETURN = r"""
timeout:
  description: The timeout the file now carries (or would carry, in check mode).
  returned: success
  type: int
  sample: 1200
previous_timeout:
  description: The timeout the file carried before.
  returned: success
  type: int
  sample: 600
backup_file:
  description: The backup made before the change.
  returned: changed and O(backup) and not check mode
  type: str
  sample: /opt/k2/docker/offload/flows/iceberg_offload_flow.py.1234.2026-11-26@14:20:00~
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_common import IDENTIFIER
from ansible.module_utils.offload_flow_timeout_logic import FlowFileError, set_timeout

MAX_TIMEOUT_SECONDS = 86400


def changed_line(source: bytes, updated: bytes) -> tuple[str, str]:
    before, after = source.decode(errors="replace").splitlines(), updated.decode(errors="replace").splitlines()
    pairs = [(b, a) for b, a in zip(before, after) if b != a]
    return (pairs[0][0] + "\n", pairs[0][1] + "\n") if pairs else ("", "")


def write_atomically(module: AnsibleModule, path: str, content: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".offload_flow_timeout.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    module.atomic_move(tmp, path)  # keeps the destination's mode, owner and SELinux context


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "timeout": {"type": "int", "required": True},
            "function": {"type": "str", "default": "offload_table"},
            "backup": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    path = p["path"]
    if not 1 <= p["timeout"] <= MAX_TIMEOUT_SECONDS:
        module.fail_json(msg=f"timeout must be between 1 and {MAX_TIMEOUT_SECONDS} seconds, got {p['timeout']}.")
    if not IDENTIFIER.fullmatch(p["function"]):
        module.fail_json(msg=f"Invalid function name {p['function']!r}.")
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except OSError as exc:
        module.fail_json(msg=f"Cannot read the flow file {path}: {exc.strerror or exc}.")
    try:
        updated, previous = set_timeout(source, p["function"], p["timeout"], name=f"flow file {path}")
    except FlowFileError as exc:
        module.fail_json(msg=str(exc))
    result = {"changed": updated != source, "timeout": p["timeout"], "previous_timeout": previous}
    if result["changed"]:
        before, after = changed_line(source, updated)
        result["diff"] = {"before_header": path, "after_header": path, "before": before, "after": after}
        if not module.check_mode:
            try:
                if p["backup"]:
                    result["backup_file"] = module.backup_local(path)
                write_atomically(module, path, updated)
            except OSError as exc:
                module.fail_json(msg=f"Cannot write the flow file {path}: {exc.strerror or exc}.", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
