#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_iceberg_info
short_description: Read the cold tier's Iceberg tables from their metadata, on the Docker host
description:
  - Reads, for each offloaded table, the current Iceberg metadata under the warehouse directory as the
    Docker host sees it (K2 binds C(./docker/iceberg/warehouse) to C(/home/iceberg/warehouse) in
    C(k2-spark-iceberg)).
  - Finds the current metadata like K2's Hadoop catalog (C(metadata/version-hint.text) naming
    C(vN.metadata.json)), else the newest C(*.metadata.json).
  - Reports the current snapshot, its commit time and total records, and the maximum of the table's
    timestamp column taken from the data files' column statistics (no data scan) - what was really
    offloaded, the truth a watermark is checked against.
  - Also reports the warehouse directory's owner and mode (the runbook expects C(drwxrwxr-x)).
version_added: "1.0.0"
author: K2 offload automation
extends_documentation_fragment:
  - offload.tables
  - offload.info_module
options:
  warehouse_path:
    description: The Iceberg warehouse directory on the host where the module runs.
    type: path
    required: true
  written_warehouse_path:
    description:
      - The warehouse path as written inside the table metadata (the Spark container's view).
      - Files named under it are read from O(warehouse_path).
    type: str
    default: /home/iceberg/warehouse
requirements:
  - pyiceberg >= 0.9 (only for O(tables[].timestamp_col) statistics)
"""

EXAMPLES = r"""
---
- name: Read the cold tier of every offloaded table
  offload_iceberg_info:
    warehouse_path: /srv/k2/docker/iceberg/warehouse
    tables: "{{ k2_tables }}"
  register: cold
"""

RETURN = r"""
---
warehouse:
  description: Owner, group and mode of the warehouse directory.
  returned: always
  type: dict
  sample: {exists: true, uid: 0, gid: 0, mode: "0775", writable_by_group: true}
tables:
  description: Per source table, the Iceberg side; C(max_timestamp) and C(max_sequence) are the largest upper
    bounds of the cursor columns over the current snapshot's data files (what was really committed).
    C(exists) is false for a table that is not there (empty), and null with C(error) when its directory cannot be
    read (neither, and the watermark repair refuses it).
  returned: always
  type: dict
  sample:
    bronze_trades_binance:
      exists: true
      metadata_file: /srv/k2/warehouse/cold/bronze_trades_binance/metadata/v4.metadata.json
      snapshot_id: 3051729675574597004
      committed_at: "2026-11-26T07:31:39.201000+00:00"
      total_records: 66908
      max_timestamp: "2026-11-26T07:26:55.283000+00:00"
      max_sequence: 1795689933414259
      error: null
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.offload_common import check_tables, tables_argument_spec
from ansible.module_utils.offload_iceberg_inspect import HAS_PYICEBERG, read_iceberg


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "warehouse_path": {"type": "path", "required": True},
            "written_warehouse_path": {"type": "str", "default": "/home/iceberg/warehouse"},
            **tables_argument_spec(),
        },
        supports_check_mode=True,
    )
    if not HAS_PYICEBERG:
        module.fail_json(msg=missing_required_lib("pyiceberg"))
    check_tables(module, module.params["tables"])
    module.exit_json(changed=False, **read_iceberg(module))


if __name__ == "__main__":
    main()
