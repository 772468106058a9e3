"""Twins of the lab: more K2 stacks on this Docker engine, to run the playbooks over several Docker hosts at once.

Twin <name> is the lab under other names: containers k2<name>-clickhouse, ..., network k2<name>-network, the main
lab's host ports + 100 x (1 for b, 2 for c, ...), state in .lab/twins/<name>, and its own value of the lab's
label, so that its `down` never touches the main lab or another twin (docs/many-stacks.md).

  .venv/bin/python lab/twin.py b up                     labctl up for twin b, then writes .lab/twins/hosts.yml
  .venv/bin/python lab/twin.py b fault worker-stopped   any labctl command, on twin b
  .venv/bin/python lab/twin.py b down                   labctl down for twin b
  .venv/bin/python lab/twin.py b env                    its K2_LAB_* variables (`eval` them to use labctl directly)
  ansible-playbook -i .lab/twins/hosts.yml playbooks/remediate.yml    the main lab and every twin that is up
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from config import DEFAULT_PREFIX, PROJECT_ROOT, TWINS_DIR, LabConfig  # noqa: E402

NAMES = "bcdef"
PORTS = ("port_clickhouse", "port_prefect", "port_prometheus", "port_alertmanager", "port_metrics", "port_postgres",
         "port_eda")
# k2_containers' keys (inventory/group_vars/all/k2.yml) -> the lab's services.
CONTAINERS = {"clickhouse": "clickhouse", "prefect_db": "prefect-db", "prefect_server": "prefect-server",
              "prefect_worker": "prefect-worker", "spark": "spark-iceberg"}
MAIN_HOST = "k2-lab"  # inventory/lab/hosts.yml
INVENTORY = TWINS_DIR / "hosts.yml"


def overrides(name: str) -> dict:
    """The LabConfig fields twin `name` sets; the rest (layout, layers, timeouts, feed) is the main lab's."""
    if len(name) != 1 or name not in NAMES:
        raise ValueError(f"twin name {name!r}: one of {', '.join(NAMES)}")
    main = LabConfig()
    if not main.is_main:  # e.g. a shell that `eval`ed a twin's env: its ports would be offset twice
        raise ValueError(f"K2_LAB_PREFIX is {main.prefix!r}: a twin is made from the main lab's settings "
                         f"({DEFAULT_PREFIX!r}); unset the twin's K2_LAB_* variables first")
    offset = 100 * (NAMES.index(name) + 1)  # b: 8223, 4300, ...; five twins stay clear of each other's ports
    return {"prefix": f"k2{name}-", "network": f"k2{name}-network", "state_dir": TWINS_DIR / name,
            "stack_host": host(name),
            **{port: getattr(main, port) + offset for port in PORTS}}


def config(name: str) -> LabConfig:
    return LabConfig(**overrides(name))


def env(name: str) -> dict[str, str]:
    """The K2_LAB_* variables that make labctl act on twin `name` (each LabConfig field has its variable)."""
    return {f"K2_LAB_{field.upper()}": str(value) for field, value in overrides(name).items()}


def host(name: str) -> str:
    return f"{MAIN_HOST}-{name}"


def host_vars(cfg: LabConfig) -> dict:
    """What a twin changes from the lab's inventory (inventory/lab/group_vars): its names, ports and paths. The
    aliases (k2_container_aliases) stay: they are per network, and each twin has its own."""
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "k2_containers": {key: cfg.container(service) for key, service in CONTAINERS.items()},
        "k2_monitoring_containers": [cfg.container("prometheus"), cfg.container("alertmanager")],
        "k2_network_name": cfg.network,
        "k2_postgres_port": cfg.port_postgres,
        "k2_postgres_password": cfg.db_password,
        "k2_clickhouse_port": cfg.port_clickhouse,
        "k2_clickhouse_password": cfg.clickhouse_password,
        "k2_prefect_api_url": f"http://127.0.0.1:{cfg.port_prefect}/api",
        "k2_prometheus_url": f"http://127.0.0.1:{cfg.port_prometheus}",
        "k2_alertmanager_url": f"http://127.0.0.1:{cfg.port_alertmanager}",
        "k2_metrics_url": f"http://127.0.0.1:{cfg.port_metrics}/metrics",
        "k2_offload_task_timeout_seconds": cfg.task_timeout_seconds,
        # The Docker host's paths: the lock is per stack, so a remediation of one twin never blocks another.
        "k2_remediation_lock_path": str(cfg.state_dir / "locks" / "remediation.lock"),
        "k2_incident_log_on_host": str(cfg.state_dir / "incidents" / "incidents.jsonl"),
        "k2_warehouse_host_path": str(cfg.warehouse_dir),
        "k2_watermark_backup_dir": str(cfg.state_dir / "backups"),
    }


def write_inventory(directory: Path, names: list[str], with_main: bool = True) -> Path:
    """An inventory of the main lab (unless with_main=False) and twins `names` in `directory`: hosts.yml, and
    group_vars linked to the lab inventory's (K2's defaults, then the lab's), which every host shares. Returns
    hosts.yml."""
    main = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    hosts = {**({MAIN_HOST: main} if with_main else {}), **{host(name): host_vars(config(name)) for name in names}}
    return _write_inventory(directory, hosts, "the main lab and its twins")


def write_stand_in_inventory(name: str) -> Path:
    """An inventory where twin `name` stands in for the main lab: host k2-lab with the twin's names, ports and
    paths, so that tests written for the lab run on the twin (make test's second lane, tests/run_on_twin.py). It is
    laid out like the project's (<root>/inventory/lab/hosts.yml, group_vars linked to the project's), so that
    molecule's links can point at it (K2_TEST_INVENTORY_ROOT, .config/molecule/config.yml); outside the twin's
    state dir, which a rebuild of the twin empties. Returns hosts.yml."""
    lab_dir = TWINS_DIR / f"stand-in-{name}" / "inventory" / "lab"
    lab_dir.mkdir(parents=True, exist_ok=True)
    group_vars = lab_dir / "group_vars"
    if not group_vars.is_symlink():
        group_vars.symlink_to(PROJECT_ROOT / "inventory/lab/group_vars", target_is_directory=True)
    return _write_hosts(lab_dir, {MAIN_HOST: host_vars(config(name))}, f"twin {name} standing in for the main lab")


def _write_inventory(directory: Path, hosts: dict, what: str) -> Path:
    group_vars = directory / "group_vars"
    group_vars.mkdir(parents=True, exist_ok=True)
    for group, target in (("all", PROJECT_ROOT / "inventory/group_vars/all"),
                          ("k2_docker_hosts", PROJECT_ROOT / "inventory/lab/group_vars/k2_docker_hosts")):
        link = group_vars / group
        if not link.is_symlink():
            link.symlink_to(target, target_is_directory=True)
    return _write_hosts(directory, hosts, what)


def _write_hosts(directory: Path, hosts: dict, what: str) -> Path:
    path = directory / "hosts.yml"
    path.write_text(f"---\n# Written by lab/twin.py: {what} (docs/many-stacks.md).\n"
                    + yaml.safe_dump({"all": {"children": {"k2_docker_hosts": {"hosts": hosts}}}}, sort_keys=False))
    return path


def remove_inventory(directory: Path) -> None:
    """What write_inventory wrote (the main lab's down keeps TWINS_DIR while a twin is up)."""
    for path in (directory / "hosts.yml", directory / "group_vars/all", directory / "group_vars/k2_docker_hosts"):
        path.unlink(missing_ok=True)
    for path in (directory / "group_vars", directory):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def twins_up() -> list[str]:
    """Twins with a state dir: brought up and not yet down (labctl down removes the state dir)."""
    return [name for name in NAMES if (TWINS_DIR / name).is_dir()]


def labctl(name: str, *args: str, **run) -> subprocess.CompletedProcess:
    """lab/labctl.py on twin `name`; `run`: subprocess.run's options (capture_output, timeout...). After `up` and
    `down`, INVENTORY lists the twins then up."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "labctl.py"), *args],
                          env={**os.environ, **env(name)}, check=False, **run)
    if args[:1] in (("up",), ("down",)):
        if twins_up():
            write_inventory(TWINS_DIR, twins_up())
        else:
            remove_inventory(TWINS_DIR)
    return done


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in NAMES:
        print(__doc__, file=sys.stderr)
        return 2
    name, command = argv[0], argv[1]
    if command == "env":
        print("\n".join(f"export {key}={value}" for key, value in env(name).items()))
        return 0
    rc = labctl(name, *argv[1:]).returncode
    if command in ("up", "down") and INVENTORY.exists():
        print(f"inventory of the main lab and twin(s) {', '.join(twins_up())}: {INVENTORY}")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
