"""`make bench`: lab start-up time (cold and warm), offload cycle time, diagnosis time, time from fault to
verified recovery per remediated scenario (MTTR), resident memory per container.

Medians over repeated runs (this machine is shared and noisy); the run count is printed with each figure.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lab"))

import faults  # noqa: E402
import lab_clients  # noqa: E402
import stack  # noqa: E402
from config import LabConfig  # noqa: E402

LABCTL = [sys.executable, str(ROOT / "lab" / "labctl.py")]
RUNS = 3
# One representative fault per remediated scenario; job-oom needs a failed run before anything shows it.
MTTR_FAULTS = [(1, "worker-oom", False), (2, "clickhouse-stopped", False), (3, "job-oom", True)]


def timed(args: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(LABCTL + args, check=True, capture_output=True)
    return time.monotonic() - started


def timed_cmd(argv: list[str], env: dict) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.monotonic() - started


def main() -> int:
    cfg = LabConfig()
    print("== lab start-up")
    subprocess.run(LABCTL + ["down", "--images"], check=True, capture_output=True)
    print(f"cold (images built, volumes created, from nothing): {timed(['up']):6.1f} s   (1 run)")
    warm = []
    for _ in range(RUNS):
        subprocess.run(LABCTL + ["down"], check=True, capture_output=True)
        warm.append(timed(["up"]))
    print(f"warm (images present, containers created):          {statistics.median(warm):6.1f} s   "
          f"(median of {RUNS})")
    print(f"already up (idempotent re-run):                     {statistics.median(timed(['up']) for _ in range(RUNS)):6.1f} s   "
          f"(median of {RUNS})")

    print("\n== offload cycle (bronze tables, Spark local mode, one JVM per table as on K2)")
    prefect = lab_clients.Prefect(cfg)
    durations = []
    for _ in range(RUNS):
        started = time.monotonic()
        run = prefect.wait(prefect.trigger(None), 600)
        durations.append(time.monotonic() - started)
        if run["state_type"] != "COMPLETED":
            print(f"cycle ended {run['state_type']}")
            return 1
    print(f"trigger -> COMPLETED: {statistics.median(durations):6.1f} s   (median of {RUNS})")

    print("\n== diagnosis: playbooks/diagnose.yml vs the runbook's own commands run one after another")
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
           "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    playbook = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(ROOT / "playbooks" / "diagnose.yml"),
                "-e", "report_path=/tmp/k2-bench-diagnose.json"]
    diag = [timed_cmd(playbook, env) for _ in range(RUNS)]
    shell = [timed_cmd([str(ROOT / "bench" / "runbook_diagnosis.sh")], env) for _ in range(RUNS)]
    print(f"diagnose.yml (all tables, concurrent probes, triage, report): {statistics.median(diag):6.1f} s   "
          f"(median of {RUNS})")
    print(f"runbook step 1-4 commands, sequential (no triage):            {statistics.median(shell):6.1f} s   "
          f"(median of {RUNS}; plus the engineer's reading time)")

    print("\n== MTTR: fault injected -> remediate.yml reports verified recovery (runbook: 15-30 min)")
    dc = stack.client()
    for scenario, fault, needs_failed_run in MTTR_FAULTS:
        total, playbook_only = [], []
        for _ in range(RUNS):
            subprocess.run(LABCTL + ["clear"], check=True, capture_output=True)
            started = time.monotonic()
            faults.inject(dc, cfg, fault)
            if needs_failed_run:  # only a failed run's log shows it (exit 137)
                prefect.wait(prefect.trigger(["bronze_trades_binance"]), 600)
            remediate_started = time.monotonic()
            proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"),
                                   str(ROOT / "playbooks" / "remediate.yml")], capture_output=True, env=env, cwd=ROOT)
            if proc.returncode != 0:
                print(f"scenario {scenario} ({fault}): remediate.yml failed:\n{proc.stdout.decode()[-1500:]}")
                return 1
            total.append(time.monotonic() - started)
            playbook_only.append(time.monotonic() - remediate_started)
        print(f"scenario {scenario} ({fault:<18}) fault -> verified recovery {statistics.median(total):6.1f} s, "
              f"remediate.yml alone {statistics.median(playbook_only):6.1f} s   (median of {RUNS}; target < 90 s)")
    subprocess.run(LABCTL + ["clear"], check=True, capture_output=True)

    print("\n== resident memory per container (docker stats, after the cycles)")
    for ctr in sorted(stack.lab_containers(dc), key=lambda c: c.name):
        mem = ctr.stats(stream=False)["memory_stats"]
        usage = mem.get("usage", 0) - mem.get("stats", {}).get("cache", 0)
        print(f"{ctr.name:<20} {usage / 2**20:8.0f} MiB   (limit {mem.get('limit', 0) / 2**20:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
