# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: read-only access to the Docker engine through the Docker SDK for Python.
# What the diagnosis reads of the containers - inspect, one-shot memory stats, a process list and file checks
# through exec - in one module run, the calls concurrent: per-call Ansible tasks cost ~1 s each under load.
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

try:
    import docker
    from docker.errors import DockerException, NotFound
    from requests.exceptions import RequestException
    HAS_DOCKER_SDK, DOCKER_SDK_IMPORT_ERROR = True, None
except ImportError as exc:  # reported by the module with missing_required_lib
    HAS_DOCKER_SDK, DOCKER_SDK_IMPORT_ERROR = False, exc
    DockerException = NotFound = RequestException = OSError

try:
    from ansible.module_utils.offload_common import first_line
    from ansible.module_utils.offload_docker import api_memory, container_state
except ImportError:  # unit tests import module_utils/ directly
    from offload_common import first_line
    from offload_docker import api_memory, container_state

# A Docker API call fails with these: the engine's own errors, and the HTTP transport's (timeouts, refused socket).
API_ERRORS = (DockerException, RequestException, OSError)


class DockerUnavailable(Exception):
    """The Docker engine did not answer; the message is one line."""


def connect(timeout: int):
    """A low-level API client from the environment (DOCKER_HOST etc.), each call bounded by `timeout` seconds."""
    try:
        client = docker.APIClient(**docker.utils.kwargs_from_env(), timeout=timeout)
        client.ping()
        return client
    except API_ERRORS as exc:
        raise DockerUnavailable(f"Docker engine not answering: {first_line(exc)}") from None


def _inspect(api, name: str) -> dict | None:
    try:
        return api.inspect_container(name)
    except NotFound:
        return None


def _exec(api, container: str, argv: list[str]) -> dict:
    """Run argv in a running container: {rc, output, error}; rc is None when the exec could not run."""
    try:
        exec_id = api.exec_create(container, argv, stdout=True, stderr=True)["Id"]
        output = api.exec_start(exec_id).decode(errors="replace")
        return {"rc": api.exec_inspect(exec_id).get("ExitCode"), "output": output, "error": None}
    except API_ERRORS as exc:
        return {"rc": None, "output": "", "error": f"exec in {container} failed: {first_line(exc)}"}


def gather(api, containers: list[str], memory_of: list[str], processes_in: list[str],
           file_checks: list[dict]) -> dict:
    """Everything at once. A container the API could not read lands in `errors` (its state is unknown, which is
    not 'absent'); memory is read only from running containers."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        inspects = {name: pool.submit(_inspect, api, name) for name in containers}
        stats = {name: pool.submit(api.stats, name, stream=False, one_shot=True) for name in memory_of}
        ps = {name: pool.submit(_exec, api, name, ["ps", "-eo", "pid=,etimes=,args="]) for name in processes_in}
        files = [(check, pool.submit(_exec, api, check["container"], ["test", "-f", check["path"]]))
                 for check in file_checks]
        result = {"reachable": True, "error": None, "containers": {}, "errors": {}, "processes": {}, "files": []}
        for name, future in inspects.items():
            try:
                info = future.result()
            except API_ERRORS as exc:
                result["errors"][name] = first_line(exc)
                continue
            memory = None
            if name in stats and info and (info.get("State") or {}).get("Running"):
                try:
                    memory = api_memory(stats[name].result())
                except API_ERRORS as exc:
                    result["errors"][name] = f"memory stats: {first_line(exc)}"
            result["containers"][name] = container_state(name, info, memory=memory)
        for name, future in ps.items():
            result["processes"][name] = future.result()
        for check, future in files:
            run = future.result()
            present = None if run["rc"] is None else run["rc"] == 0
            result["files"].append({"container": check["container"], "path": check["path"], "present": present,
                                    "error": run["error"]})
    if result["errors"]:
        result["error"] = "; ".join(f"{name}: {why}" for name, why in sorted(result["errors"].items()))
    return result
