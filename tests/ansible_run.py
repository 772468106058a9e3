"""Run one of the project's modules (or a playbook) through real ansible-playbook and return its result.

Used by integration tests: the module runs exactly as in production (AnsiballZ, module_utils, no_log),
against the lab inventory of ansible.cfg.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_PLAYBOOK = str(ROOT / ".venv" / "bin" / "ansible-playbook")


def _env() -> dict:
    return {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "json",
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_SHOW_CUSTOM_STATS": "1", "K2_LAB_ROOT": str(ROOT),
            "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"}


def run_playbook(playbook: str | Path, *extra: str, timeout: float = 300,
                 env: dict | None = None) -> tuple[int, dict, str]:
    """(returncode, parsed json callback output, stderr); `env` adds to the environment."""
    proc = subprocess.run([ANSIBLE_PLAYBOOK, str(playbook), *extra], cwd=ROOT, env={**_env(), **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
    try:
        out = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        out = {"raw": proc.stdout}
    return proc.returncode, out, proc.stderr


class BackgroundPlaybook:
    """ansible-playbook started in the background, in its own process group (a test can kill the whole run, as a
    crashed control node would), its JSON output in a file."""

    def __init__(self, playbook: str | Path, *extra: str, workdir: Path, name: str) -> None:
        self.stdout_path, self.stderr_path = workdir / f"{name}.out", workdir / f"{name}.err"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen([ANSIBLE_PLAYBOOK, str(playbook), *extra], cwd=ROOT, env=_env(), stdout=out,
                                         stderr=err, text=True, start_new_session=True)

    def result(self, timeout: float = 900) -> tuple[int, dict, str]:
        """(returncode, parsed json callback output, stderr), like run_playbook."""
        rc = self.proc.wait(timeout=timeout)
        stdout = self.stdout_path.read_text()
        try:
            out = json.loads(stdout[stdout.index("{"):])
        except ValueError:
            out = {"raw": stdout}
        return rc, out, self.stderr_path.read_text()

    def kill(self) -> None:
        os.killpg(self.proc.pid, 9)
        self.proc.wait(timeout=30)


def run_module(module: str, args: dict, check: bool = False, timeout: float = 120) -> dict:
    """Run `module` with `args` on the lab host; return the task result (with 'failed' set on failure)."""
    play = [{"name": "t", "hosts": "k2_docker_hosts", "gather_facts": False,
             "tasks": [{"name": "m", module: args, "ignore_errors": True}]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        json.dump(play, f)
    try:
        _, out, stderr = run_playbook(f.name, *(["--check"] if check else []), timeout=timeout)
    finally:
        os.unlink(f.name)
    try:
        return next(iter(out["plays"][0]["tasks"][0]["hosts"].values()))
    except (KeyError, IndexError, StopIteration) as exc:
        raise AssertionError(f"no result from ansible-playbook: {out} {stderr[-2000:]}") from exc


def run_module_until(module: str, args: dict, ready, check: bool = False, attempts: int = 10,
                     pause: float = 6) -> dict:
    """run_module, again after `pause` s while `ready(result)` is false (a component another test stopped or
    restarted beside this one); the last attempt's result otherwise."""
    for attempt in range(attempts):
        result = run_module(module, args, check=check)
        if ready(result) or attempt == attempts - 1:
            return result
        time.sleep(pause)
    return result


def run_molecule(scenario: str) -> None:
    """`molecule test -s scenario` on the shared lab; its whole output is kept in .lab/molecule-<scenario>.log."""
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1",
           "PY_COLORS": "0", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "molecule"), "test", "-s", scenario], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    output = proc.stdout + proc.stderr
    (ROOT / ".lab" / f"molecule-{scenario}.log").write_text(output)  # the whole run, for whoever debugs it
    assert proc.returncode == 0, output[-6000:]
    for step in ("prepare", "check", "side_effect", "converge", "idempotence", "verify", "destroy"):
        assert f"[{scenario} > {step}] Executed: Successful" in output, f"{step} did not run: {output[-3000:]}"
