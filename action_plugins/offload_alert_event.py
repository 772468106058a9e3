# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""offload_alert_event: hand the module (library/offload_alert_event.py) the k2_alert_* variables as data. The task
vars an action plugin receives are the variables' values before any rendering; the module checks them and its
result, like every task result, is never rendered as a template."""
from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# The options documented in library/offload_alert_event.py (tests/unit/test_module_docs.py holds them together).
ARGUMENT_SPEC = {"tables": {"type": "list", "elements": "str", "required": True}}
PREFIX = "k2_alert_"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        variables = {}
        for name, value in (task_vars or {}).items():
            if not name.startswith(PREFIX):
                continue
            # Only a string can be one of Alertmanager's fields; anything else is refused here, before the module's
            # arguments are serialised (no container of the sender's ever reaches a template engine).
            if value is not None and not isinstance(value, str):
                kind = next((t.__name__ for t in (dict, list, bool, int, float) if isinstance(value, t)), "value")
                raise AnsibleActionFail(f"{name} must be a string, got a {kind}: the alert is refused and this run "
                                        "changes nothing.")
            variables[name] = None if value is None else str(value)
        result.update(self._execute_module(module_name="offload_alert_event",
                                           module_args={"tables": args["tables"], "_variables": variables},
                                           task_vars=task_vars))
        return result
