"""DockerEngine (module_utils/offload_docker_api.py) against a fake of the Docker SDK's low-level client: the calls a
remediation makes, their errors as one line naming the container, and a job bounded by its timeout. The real engine
is exercised by the integration tests (test_module_offload_container.py, test_module_offload_run_job.py)."""
from __future__ import annotations

import threading

import pytest
from docker.errors import APIError, NotFound
from requests.exceptions import ReadTimeout

import offload_docker_api as api_mod
from offload_docker import DockerError

RUNNING = {"State": {"Status": "running", "Running": True, "StartedAt": "2026-11-26T07:00:00.5Z"},
           "HostConfig": {"Memory": 1000}, "NetworkSettings": {"Networks": {"k2-net": {}}}}


def api_error(explanation: str) -> APIError:
    return APIError("500 Server Error for http+docker://localhost/v1.47/containers/x", explanation=explanation)


class FakeAPI:
    """The calls DockerEngine makes of docker.APIClient, recorded; `fail` maps a method to the error it raises."""

    def __init__(self, inspect=None, fail=None, job_output=(b"line 1\n",), job_blocks=False, exit_code=0):
        self.calls, self.inspect, self.fail = [], inspect, fail or {}
        self.job_output, self.job_blocks, self.exit_code = job_output, job_blocks, exit_code
        self.release = threading.Event()

    def _record(self, method, *args, **kwargs):
        self.calls.append((method, args, kwargs))
        if method in self.fail:
            raise self.fail[method]

    def inspect_container(self, name):
        self._record("inspect_container", name)
        if self.inspect is None:
            raise NotFound(f"No such container: {name}")
        return self.inspect

    def stats(self, name, stream, one_shot):
        self._record("stats", name, stream=stream, one_shot=one_shot)
        return {"memory_stats": {"usage": 950, "limit": 4000, "stats": {"inactive_file": 50}}}

    def logs(self, name, **kwargs):
        self._record("logs", name, **kwargs)
        return b"old\n\nready\nERROR: disk full\n"

    def start(self, name):
        self._record("start", name)

    def restart(self, name):
        self._record("restart", name)

    def unpause(self, name):
        self._record("unpause", name)

    def connect_container_to_network(self, name, network, aliases=None):
        self._record("connect", name, network, aliases=aliases)

    def exec_create(self, container, argv, stdout, stderr):
        self._record("exec_create", container, argv)
        return {"Id": "exec-1"}

    def exec_start(self, exec_id, stream=False):
        self._record("exec_start", exec_id)
        if not stream:
            return b"".join(self.job_output)
        return self._stream()

    def _stream(self):
        yield from self.job_output
        if self.job_blocks:
            self.release.wait(10)  # a job still running: the stream stays open

    def exec_inspect(self, exec_id):
        return {"ExitCode": self.exit_code}


@pytest.fixture
def engine(monkeypatch):
    def make(**kwargs):
        fake = FakeAPI(**kwargs)
        monkeypatch.setattr(api_mod, "connect", lambda timeout: fake)
        return api_mod.DockerEngine(), fake
    return make


@pytest.mark.parametrize("action, args, call", [
    ("start", {}, ("start", ("k2-x",), {})),
    ("restart", {}, ("restart", ("k2-x",), {})),
    ("unpause", {}, ("unpause", ("k2-x",), {})),
    ("connect", {"network": "k2-net", "aliases": ["clickhouse"]},
     ("connect", ("k2-x", "k2-net"), {"aliases": ["clickhouse"]})),
    ("connect", {"network": "k2-net", "aliases": []}, ("connect", ("k2-x", "k2-net"), {"aliases": None})),
])
def test_each_planned_action_is_one_engine_call(engine, action, args, call):
    docker, fake = engine()
    docker.act("k2-x", action, args)
    assert fake.calls == [call]


def test_an_engine_error_is_one_line_naming_the_action_and_the_engines_reason(engine):
    docker, _ = engine(fail={"connect": api_error("network k2-net not found\nmore detail")})
    with pytest.raises(DockerError) as raised:
        docker.act("k2-x", "connect", {"network": "k2-net", "aliases": []})
    assert str(raised.value) == "connect k2-x to network k2-net failed: network k2-net not found"


def test_a_hung_engine_is_a_failure_not_a_wait(engine):
    docker, _ = engine(fail={"start": ReadTimeout("UnixHTTPConnectionPool: Read timed out. (read timeout=60)")})
    with pytest.raises(DockerError, match=r"^start k2-x failed: UnixHTTPConnectionPool: Read timed out"):
        docker.act("k2-x", "start", {})


def test_an_absent_container_has_state_absent_and_other_inspect_errors_fail(engine):
    docker, _ = engine(inspect=None)
    assert docker.state("k2-x") == {"name": "k2-x", "exists": False, "status": "absent", "memory_fraction": None}
    docker, _ = engine(inspect=RUNNING, fail={"inspect_container": api_error("permission denied")})
    with pytest.raises(DockerError, match=r"^cannot inspect container k2-x: permission denied$"):
        docker.state("k2-x")


def test_memory_is_read_one_shot_only_when_asked_and_running(engine):
    docker, fake = engine(inspect=RUNNING)
    assert docker.state("k2-x")["memory_fraction"] is None
    assert [c[0] for c in fake.calls] == ["inspect_container"]
    state = docker.state("k2-x", with_memory=True)
    assert (state["memory_usage"], state["memory_fraction"]) == (900, 0.9)  # page cache is not pressure
    assert fake.calls[-1] == ("stats", ("k2-x",), {"stream": False, "one_shot": True})
    docker, fake = engine(inspect={**RUNNING, "State": {"Status": "exited", "Running": False}})
    docker.state("k2-x", with_memory=True)
    assert [c[0] for c in fake.calls] == ["inspect_container"]


def test_logs_of_the_last_run_only(engine):
    docker, fake = engine(inspect=RUNNING)
    assert docker.logs("k2-x", 2, since="2026-11-26T07:00:00.5Z") == ["ready", "ERROR: disk full"]
    assert fake.calls[-1] == ("logs", ("k2-x",), {"tail": 2, "since": 1795676400.5})
    docker.logs("k2-x", 5)
    assert fake.calls[-1] == ("logs", ("k2-x",), {"tail": 5})


def test_exec_returns_exit_code_and_output_and_a_failed_exec_names_the_container(engine):
    docker, _ = engine(exit_code=3, job_output=(b"a\n", b"b\n"))
    assert docker.exec("k2-spark", ["ps"]) == (3, "a\nb\n")
    docker, _ = engine(fail={"exec_create": api_error("container k2-spark is not running")})
    with pytest.raises(DockerError, match=r"^exec in k2-spark failed: container k2-spark is not running$"):
        docker.exec("k2-spark", ["ps"])


def test_a_job_that_ends_gives_its_exit_code_and_whole_output(engine):
    docker, fake = engine(exit_code=0, job_output=(b"Offload ", b"completed successfully\n"))
    assert docker.run_job("k2-spark", ["python3", "job.py"], timeout=5) == (0, "Offload completed successfully\n")
    assert fake.calls[0] == ("exec_create", ("k2-spark", ["python3", "job.py"]), {})


def test_a_job_still_running_at_the_deadline_gives_no_exit_code_and_its_output_so_far(engine):
    docker, fake = engine(job_output=(b"started\n",), job_blocks=True)
    try:
        assert docker.run_job("k2-spark", ["python3", "job.py"], timeout=0.3) == (None, "started\n")
    finally:
        fake.release.set()
