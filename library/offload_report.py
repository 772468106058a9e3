#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Documentation only: the work is done on the control node by action_plugins/offload_report.py (as
# ansible.builtin.debug is documented in a module file and run by its action plugin).
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_report
short_description: Write a run's report (JSON, Markdown, HTML) on the control node
description:
  - Writes O(content) to O(dest) on the control node, creating its directory (mode C(0700)) if needed, and
    replaces the file atomically, so that a reader - AWX, the next playbook, an engineer - never sees half a report.
  - Runs in the controller's own process (an action plugin), with no module to start on any host - unlike
    M(ansible.builtin.copy) delegated to C(localhost), which starts two modules per report.
  - The report is the run's output, not a change to the stack - it is written in check mode too and the task is
    never C(changed).
version_added: "1.1.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: Writes the report in check mode too (it is the run's output).
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Never reports a change; the same content gives the same file.
  action:
    support: full
    details: Runs on the control node only (action plugin C(action_plugins/offload_report.py)).
options:
  content:
    description: What to write, e.g. C({{ report | to_nice_json }}).
    type: str
    required: true
  dest:
    description: The report file on the control node.
    type: path
    required: true
  mode:
    description: Permissions of the file, octal. Reports may name hosts and errors, so only their owner reads them.
    type: str
    default: "0600"
"""

EXAMPLES = r"""
---
- name: Write the JSON report on the control node
  offload_report:
    content: "{{ offload_diagnose_report | to_nice_json }}"
    dest: "{{ offload_diagnose_report_path }}"
"""

RETURN = r"""
---
dest:
  description: The report file written.
  returned: success
  type: str
  sample: /srv/k2/reports/diagnose-k2-prod-1.json
size:
  description: Bytes written.
  returned: success
  type: int
  sample: 10240
"""
