# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: the Docker engine through the Docker SDK for Python (no docker CLI needed on
# the Docker host or in an execution environment).
# - gather(): what the diagnosis reads of the containers - inspect, one-shot memory stats, a process list and file
#   checks through exec - in one module run, the calls concurrent: per-call Ansible tasks cost ~1 s each under load.
# - DockerEngine: what the remediation modules read and do, one call at a time, each error one line that names the
#   container and the engine's reason.
from __future__ import annotations

import threading
import time
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
    from ansible.module_utils.offload_docker import DockerError, api_memory, container_state, log_tail, rfc3339_epoch
except ImportError:  # unit tests import module_utils/ directly
    from offload_common import first_line
    from offload_docker import DockerError, api_memory, container_state, log_tail, rfc3339_epoch

# A Docker API call fails with these: the engine's own errors, and the HTTP transport's (timeouts, refused socket).
API_ERRORS = (DockerException, RequestException, OSError)


# Upper bound of one engine call (not of a job run through exec, which its caller bounds): a Docker API that hangs
# must turn into a clear failure, not a remediation that never ends.
DOCKER_API_TIMEOUT = 60
JOB_TICK_SECONDS = 5


class DockerUnavailable(DockerError):
    """The Docker engine did not answer; the message is one line."""


def api_reason(exc: BaseException) -> str:
    """The engine's own explanation of an API error (e.g. 'No such container: k2-x'), else the error's first line."""
    return first_line(getattr(exc, "explanation", None) or exc)


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
        return {"rc": None, "output": "", "error": f"exec in {container} failed: {api_reason(exc)}"}


# Whether the container's own user can write a directory: create and remove one empty file there. Mode and owner
# would not say it (ACLs, capabilities, a read-only mount, the user Spark runs as).
WRITE_PROBE = ["sh", "-c", 'f="$1/.k2-offload-write-probe.$$" && : > "$f" && rm -f "$f"', "write-probe"]


def gather(api, containers: list[str], memory_of: list[str], processes_in: list[str],
           file_checks: list[dict], write_checks: list[dict] = ()) -> dict:
    """Everything at once. A container the API could not read lands in `errors` (its state is unknown, which is
    not 'absent'); memory is read only from running containers. write_checks ({container, path}) are the only
    writes: one empty file created and removed in each path, as the container's user."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        inspects = {name: pool.submit(_inspect, api, name) for name in containers}
        stats = {name: pool.submit(api.stats, name, stream=False, one_shot=True) for name in memory_of}
        ps = {name: pool.submit(_exec, api, name, ["ps", "-eo", "pid=,etimes=,args="]) for name in processes_in}
        files = [(check, pool.submit(_exec, api, check["container"], ["test", "-f", check["path"]]))
                 for check in file_checks]
        writes = [(check, pool.submit(_exec, api, check["container"], [*WRITE_PROBE, check["path"]]))
                  for check in write_checks]
        result = {"reachable": True, "error": None, "containers": {}, "errors": {}, "processes": {}, "files": [],
                  "writable": []}
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
        for check, future in writes:
            run = future.result()
            result["writable"].append({"container": check["container"], "path": check["path"],
                                       "writable": None if run["rc"] is None else run["rc"] == 0,
                                       "error": run["error"] or (run["output"].strip()[:300] or None)})
    if result["errors"]:
        result["error"] = "; ".join(f"{name}: {why}" for name, why in sorted(result["errors"].items()))
    return result


class DockerEngine:
    """The Docker engine for the modules that act on containers: inspect, memory, logs, exec, and the only changes
    a remediation makes - start, restart, unpause, network connect. Raises DockerError."""

    def __init__(self, timeout: int = DOCKER_API_TIMEOUT) -> None:
        self.timeout = timeout
        self.api = connect(timeout)

    def _call(self, what: str, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except API_ERRORS as exc:
            raise DockerError(f"{what} failed: {api_reason(exc)}") from None

    def inspect(self, name: str) -> dict | None:
        """The container's inspect, None when there is no such container."""
        try:
            return _inspect(self.api, name)
        except API_ERRORS as exc:
            raise DockerError(f"cannot inspect container {name}: {api_reason(exc)}") from None

    def state(self, name: str, with_memory: bool = False) -> dict:
        info = self.inspect(name)
        memory = None
        if with_memory and info and (info.get("State") or {}).get("Running"):
            memory = api_memory(self._call(f"memory stats of container {name}", self.api.stats, name, stream=False,
                                           one_shot=True))
        return container_state(name, info, memory=memory)

    def logs(self, name: str, lines: int, since: str | None = None) -> list[str]:
        """The last `lines` log lines; with `since` (the container's StartedAt) only its last run's: the engine keeps
        the logs of every earlier run, and an old error must not be read as the reason of this stop."""
        since_epoch = rfc3339_epoch(since)
        text = self._call(f"logs of container {name}", self.api.logs, name, tail=lines,
                          **({"since": since_epoch} if since_epoch is not None else {}))
        return log_tail(text.decode(errors="replace"), lines)

    def exec(self, container: str, argv: list[str]) -> tuple[int, str]:
        """argv run in the running container: (exit code, output)."""
        run = _exec(self.api, container, argv)
        if run["rc"] is None:
            raise DockerError(run["error"])
        return run["rc"], run["output"]

    def act(self, name: str, action: str, args: dict) -> None:
        """One step of offload_docker.plan() on container `name`."""
        calls = {"start": lambda: self.api.start(name), "restart": lambda: self.api.restart(name),
                 "unpause": lambda: self.api.unpause(name),
                 "connect": lambda: self.api.connect_container_to_network(name, args["network"],
                                                                          aliases=args["aliases"] or None)}
        self._call(f"{action} {name}" + (f" to network {args['network']}" if action == "connect" else ""),
                   calls[action])

    def run_job(self, container: str, argv: list[str], timeout: int, tick=None) -> tuple[int | None, str]:
        """argv run in the container, at most `timeout` s: (exit code, output so far); exit code None when it is
        still running at the deadline - the job itself goes on in the container, the caller stops it. `tick` is
        called every few seconds while it runs (the lock's heartbeat)."""
        job_api = connect(timeout + self.timeout)  # its reads wait as long as the job may stay silent
        exec_id = self._call(f"exec in {container}", job_api.exec_create, container, argv, stdout=True,
                             stderr=True)["Id"]
        chunks: list[bytes] = []
        failure: list[str] = []

        def read() -> None:
            try:
                for chunk in job_api.exec_start(exec_id, stream=True):
                    chunks.append(chunk)
            except API_ERRORS as exc:
                failure.append(f"exec in {container} failed: {api_reason(exc)}")

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        while reader.is_alive() and time.monotonic() < deadline:
            if tick:
                tick()
            reader.join(min(JOB_TICK_SECONDS, max(deadline - time.monotonic(), 0)))
        output = b"".join(chunks).decode(errors="replace")
        if reader.is_alive():
            return None, output
        if failure:
            raise DockerError(failure[0])
        return self._call(f"exec in {container}", job_api.exec_inspect, exec_id).get("ExitCode"), output
