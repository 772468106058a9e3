"""A seeded chaos soak of the alert-driven loop on the lab: `make soak SEED=<n> FAULTS=<k>`.

The schedule runs live (every --period s) and the loop is on (scripts/loop.sh). Nobody runs a playbook: each episode
injects one fault from the lab's list, or two at once, or a second one while the loop's remediation of the first
holds the lock, at a random moment, and waits for what the loop does: the incident records the remediations leave
on the Docker host (k2_incident_log_on_host). Then the soak plays the human where one is needed (after an
escalation, or when nothing happened in time): it measures the truth, clears the lab and runs remediate.yml by hand.
A slow job and a volume spike are conditions that pass on K2 by themselves: they end with their episode.

At the end, with the schedule paused and no run in flight, every table's truth (hot vs cold). The table it prints
and writes (reports/soak-<seed>.md, .json): per episode the faults, healed (time from injection to the verified
recovery), escalated (the rule, and whether it was the right one), wrong actions (a scenario remediated that no
injected fault calls for), lock breaks, rows lost and doubled. Exit 0 only with 0 lost, 0 doubled, no wrong action,
every escalation rightly ruled and every fault healed or rightly escalated.

Faults the loop cannot see are not drawn, and the report says why: the watermark moved ahead of or behind the cold
tier, or left `running` (nothing fails, no alert fires: the daily health check finds them), the orchestration and
monitoring root causes (no run fails and the metrics stay up: the lag alert, which the loop does not act on, fires
after 30 min).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import faults  # noqa: E402
import lab_clients  # noqa: E402
import labctl  # noqa: E402
import stack  # noqa: E402
from config import LabConfig  # noqa: E402
from docker.errors import DockerException  # noqa: E402

from offload_common import parse_utc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RULE_CHANGE = "code or infrastructure change needed"
RULE_UNCLEAR = "root cause is unclear"
# The faults drawn, and the rule of the escalation each must end in (None: the loop must heal it).
POOL = {"worker-stopped": None, "worker-oom": None, "worker-killed": None, "clickhouse-stopped": None,
        "clickhouse-crashed": None, "clickhouse-disconnected": None, "spark-stopped": None,
        "job-oom": None, "jdbc-missing": RULE_CHANGE, "warehouse-permissions": None, "watermark-missing": None,
        "volume-spike": None, "job-slow": None}
NOT_DRAWN = {
    "watermark-ahead": "silent: nothing fails, no alert fires (the daily health check finds it)",
    "watermark-behind": "silent: nothing fails, no alert fires (the daily health check finds it)",
    "watermark-stuck-running": "silent, and K2's next run overwrites it",
    "watermark-history-bloat": "the runbook's history layout only",
    "prefect-db-stopped": "no run fails and the metrics stay up: only the lag alert fires, after 30 min",
    "prefect-db-unsafe": "as prefect-db-stopped, and it must be escalated by a person anyway",
    "prefect-server-stopped": "no run fails and the metrics stay up: only the lag alert fires, after 30 min",
    "prometheus-stopped": "nothing can alert (alerting blind)",
    "clickhouse-memory": "the lab's memory pressure alone does not fail the offload's small reads: the product only "
                         "observes it then, and restarts ClickHouse when the offload fails reading it (tests)",
}
# Conditions that pass by themselves on K2 (a slow job, a spike's volume): the lab files that emulate them.
TRANSIENT_FILES = {"job-slow": "job-slow", "volume-spike": "job-throughput"}


@dataclass
class Episode:
    number: int
    kind: str  # single | two at once | during a remediation
    faults: list[str]
    table: str
    injected_at: float = 0.0
    records: list[dict] = field(default_factory=list)
    outcome: str = "not handled"  # healed | escalated | not handled
    healed_seconds: float | None = None
    escalation_rules: list[str] = field(default_factory=list)
    rule_right: bool | None = None
    wrong_actions: list[str] = field(default_factory=list)
    truth: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def draw(rng: random.Random, number: int, tables: list[str], faults_left: int) -> Episode:
    """The episode `number`: its kind, its fault(s) (two distinct ones for the two kinds that need them; one when
    only one is left to inject), a table."""
    names = sorted(POOL)
    roll = rng.random()
    kind = "single" if faults_left < 2 else "two at once" if roll < 0.2 else "during a remediation" if roll < 0.4 \
        else "single"
    first = rng.choice(names)
    # Two faults of one component (the worker stopped, then OOM-killed) are one fault twice: the second is drawn
    # from the other scenarios' components.
    others = [n for n in names if faults.FAULTS[n].scenario != faults.FAULTS[first].scenario]
    chosen = [first, rng.choice(others)] if kind != "single" else [first]
    return Episode(number, kind, chosen, rng.choice(tables))


def expected_scenarios(names: list[str]) -> set[int]:
    return {faults.FAULTS[n].scenario for n in names}


def judge(episode: Episode) -> None:
    """Outcome, wrong actions and whether each escalation had the right rule, from the episode's records."""
    allowed = expected_scenarios(episode.faults)
    rules = {POOL[n] for n in episode.faults if POOL[n]}
    for record in episode.records:
        for scenario in (record.get("plan") or {}).get("scenarios") or []:
            if scenario not in allowed:
                episode.wrong_actions.append(f"scenario {scenario} remediated by run {record['run']['run_id']}")
    statuses = [(r.get("outcome") or {}).get("status") for r in episode.records]
    episode.escalation_rules = [(r.get("outcome") or {}).get("escalation_rule") or "?" for r in episode.records
                                if (r.get("outcome") or {}).get("status") == "escalated"]
    if episode.escalation_rules:
        # A fault that needs people must be escalated by its rule; two faults at once, or one injected into a running
        # remediation, may rightly stop a run as unclear (when in doubt, stop) - but never as data loss.
        right = rules | ({RULE_UNCLEAR} if episode.kind != "single" else set())
        episode.rule_right = all(rule in right for rule in episode.escalation_rules)
    if "recovered" in statuses and not rules:
        episode.outcome = "healed"
    elif episode.escalation_rules:
        episode.outcome = "escalated"


def ok(episode: Episode) -> bool:
    if episode.outcome in ("not injected", "interrupted"):  # an interrupted soak fails as a whole
        return True
    expected_escalation = any(POOL[n] for n in episode.faults)
    handled = episode.outcome == ("escalated" if expected_escalation else "healed") or (
        episode.outcome == "escalated" and episode.rule_right)
    return (handled and not episode.wrong_actions and episode.rule_right is not False
            and lost_or_doubled(episode) == (0, 0))


def lost_or_doubled(episode: Episode) -> tuple[int, int]:
    rows = episode.truth.values()
    return sum(t["missing"] for t in rows), sum(t["duplicated"] for t in rows)


class Soak:
    def __init__(self, cfg: LabConfig, seed: int, count: int, period: int, episode_timeout: float) -> None:
        self.cfg, self.seed, self.count, self.period, self.timeout = cfg, seed, count, period, episode_timeout
        self.rng = random.Random(seed)
        self.dc = stack.client()
        self.prefect = lab_clients.Prefect(cfg)
        self.records_path = cfg.state_dir / "incidents" / "incidents.jsonl"
        self.breaks_path = cfg.state_dir / "locks" / "remediation.lock.breaks.jsonl"
        self.lock_path = cfg.state_dir / "locks" / "remediation.lock"
        self.tables = [t["source_table"] for t in labctl._tables(cfg)]
        self.episodes: list[Episode] = []
        self.interrupted = ""

    # ---------------------------------------------------------------- the lab
    def say(self, message: str) -> None:
        print(f"soak {time.strftime('%H:%M:%S')}: {message}", flush=True)

    def lines(self, path: Path) -> list[str]:
        return path.read_text().splitlines() if path.exists() else []

    def records_since(self, count: int) -> list[dict]:
        return [json.loads(line) for line in self.lines(self.records_path)[count:]]

    def loop(self, command: str) -> str:
        env = {"K2_LAB_PORT_EDA": str(self.cfg.port_eda), "K2_LAB_STATE_DIR": str(self.cfg.state_dir)}
        proc = subprocess.run([str(ROOT / "scripts" / "loop.sh"), command], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, env={**os.environ, **env})
        if proc.returncode != 0:
            raise stack.LabError(f"loop {command}: {(proc.stdout + proc.stderr).strip()[-400:]}")
        return proc.stdout

    def idle(self) -> bool:
        return not self.lock_path.exists() and not self.prefect.deployment_runs_in_flight()

    def truth(self) -> dict:
        """Every table's truth, measured with the schedule paused and no run in flight (a run between its Iceberg
        commit and its watermark write would read as doubled rows)."""
        self.prefect.set_schedule(0)
        stack.wait_for("no flow run in flight and no remediation", self.idle, timeout=900)
        result = {}
        for table in self.tables:
            t = labctl.truth(self.cfg, table)
            result[table] = {"missing": t["missing"], "duplicated": t["duplicated"]}
        self.prefect.set_schedule(self.period)
        return result

    def human(self, episode: Episode, why: str) -> None:
        """What on-call does after an escalation or when nothing happened: bring the components back (the data as
        the product left it), run remediate.yml by hand (it repairs what is left, a watermark among it), then look at
        the data: a row the loop lost or doubled is still lost or doubled then."""
        episode.notes.append(f"the soak acted as the human ({why})")
        actions = faults.clear(self.dc, self.cfg, lambda table: None)  # no table rebuilt: that would hide a loss
        episode.notes.append("cleared: " + "; ".join(actions))
        proc = subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), "playbooks/remediate.yml"], cwd=ROOT,
                              capture_output=True, text=True, timeout=1200,
                              env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "K2_LAB_ROOT": str(ROOT),
                                   "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"})
        episode.notes.append(f"remediate.yml by hand: rc {proc.returncode}")
        episode.truth = self.truth()  # it puts the live schedule back too (the lab's clear had paused it)

    # ---------------------------------------------------------------- an episode
    def run_episode(self, episode: Episode) -> None:
        records_before = len(self.lines(self.records_path))
        time.sleep(self.rng.uniform(0, self.period))  # a random moment of the schedule's period
        episode.injected_at = time.time()
        first = episode.faults[0]
        self.say(f"episode {episode.number}: {episode.kind}: {' + '.join(episode.faults)} ({episode.table})")
        self.inject(episode, first)
        if not episode.faults:
            episode.outcome = "not injected"
            return
        if episode.kind == "two at once":
            self.inject(episode, episode.faults[1])
        elif episode.kind == "during a remediation":
            try:
                # Once the remediation is at a step (its diagnosis is done): the second fault is one it did not see.
                stack.wait_for("the loop's remediation at a step", lambda: bool(faults.remediation_step(self.cfg)),
                               timeout=self.timeout / 2)
                self.inject(episode, episode.faults[1])
            except stack.LabError:
                episode.notes.append(f"no remediation started within {self.timeout / 2:.0f} s: "
                                     f"{episode.faults[1]} not injected")
                episode.faults = episode.faults[:1]
        deadline = episode.injected_at + self.timeout
        while time.time() < deadline:
            time.sleep(5)
            episode.records = self.records_since(records_before)
            statuses = [(r.get("outcome") or {}).get("status") for r in episode.records]
            if self.lock_path.exists() or not statuses:
                continue
            if statuses[-1] == "escalated":
                break
            if "recovered" in statuses and self.recovered_since(episode):
                break
        episode.records = self.records_since(records_before)
        judge(episode)
        recovered = [r for r in episode.records if (r.get("outcome") or {}).get("status") == "recovered"]
        if episode.outcome == "healed":
            finished = recovered[-1]["times"]["finished_at"]
            episode.healed_seconds = round(parse_utc(finished).timestamp() - episode.injected_at, 1)
        for name in episode.faults:
            if name in TRANSIENT_FILES:
                (self.cfg.faults_dir / TRANSIENT_FILES[name]).unlink(missing_ok=True)
        if episode.outcome != "healed":
            self.human(episode, "escalated" if episode.outcome == "escalated" else f"nothing handled it in "
                                                                                  f"{self.timeout:.0f} s")
        self.say(f"episode {episode.number}: {episode.outcome}"
                 + (f" in {episode.healed_seconds} s" if episode.healed_seconds else "")
                 + (f", rules {episode.escalation_rules}" if episode.escalation_rules else "")
                 + (f", WRONG: {episode.wrong_actions}" if episode.wrong_actions else ""))

    def inject(self, episode: Episode, name: str) -> None:
        """Inject `name`; one the lab cannot inject now (its container already stopped by the other) is dropped."""
        try:
            faults.inject(self.dc, self.cfg, name, episode.table)
        except (stack.LabError, DockerException) as exc:
            episode.notes.append(f"{name} not injected: {str(exc).splitlines()[0][:200]}")
            episode.faults.remove(name)

    def recovered_since(self, episode: Episode) -> bool:
        """The offload works again: the newest finished run of the deployment, after the last record, COMPLETED (the
        next scheduled one, or a verification's), and no fault of the episode still shows in a flow run failing."""
        last = max(parse_utc(r["recorded_at"]).timestamp() for r in episode.records)
        runs = [r for r in self.prefect.runs_since(_iso(last)) if r.get("state_type") in lab_clients.FINAL_STATES]
        return bool(runs) and runs[-1]["state_type"] == "COMPLETED"

    # ---------------------------------------------------------------- the soak
    def run(self) -> int:
        self.say(f"seed {self.seed}, {self.count} fault(s), schedule every {self.period} s")
        for action in faults.clear(self.dc, self.cfg, lambda t: labctl.reset_table(self.cfg, t)):
            self.say(f"clear: {action}")
        breaks_before = len(self.lines(self.breaks_path))
        started_loop = "already running" not in self.loop("up")
        self.prefect.set_schedule(self.period, first_in=5)
        try:
            injected = 0
            try:
                while injected < self.count:
                    episode = draw(self.rng, len(self.episodes) + 1, self.tables, self.count - injected)
                    self.episodes.append(episode)
                    self.run_episode(episode)
                    injected += len(episode.faults)
            except KeyboardInterrupt:  # stop injecting, but measure and report what was done
                self.interrupted = f"interrupted after {injected} of {self.count} faults"
                self.say(self.interrupted + "; measuring the truth")
                cut = self.episodes[-1] if self.episodes else None
                if cut and cut.outcome == "not handled":
                    cut.outcome = "interrupted"  # not judged; its faults are cleared as a person would
                    self.human(cut, "interrupted")
            final = self.truth()
        finally:
            self.prefect.set_schedule(self.cfg.schedule_seconds)
            if started_loop:
                self.loop("down")
        breaks = [json.loads(line) for line in self.lines(self.breaks_path)[breaks_before:]]
        return self.report(final, breaks)

    def report(self, final: dict, breaks: list[dict]) -> int:
        lost = sum(t["missing"] for t in final.values()) + sum(lost_or_doubled(e)[0] for e in self.episodes)
        doubled = sum(t["duplicated"] for t in final.values()) + sum(lost_or_doubled(e)[1] for e in self.episodes)
        rows = ["| # | kind | faults | table | outcome | healed in | escalated (rule) | rule right | wrong actions |",
                "|---|---|---|---|---|---|---|---|---|"]
        for e in self.episodes:
            rows.append(f"| {e.number} | {e.kind} | {' + '.join(e.faults)} | {e.table} | {e.outcome} | "
                        f"{f'{e.healed_seconds:.0f} s' if e.healed_seconds else '-'} | "
                        f"{', '.join(e.escalation_rules) or '-'} | "
                        f"{'-' if e.rule_right is None else 'yes' if e.rule_right else 'NO'} | "
                        f"{'; '.join(e.wrong_actions) or 0} |")
        healed = [e.healed_seconds for e in self.episodes if e.healed_seconds]
        faults_total = sum(len(e.faults) for e in self.episodes)
        summary = [f"seed {self.seed}: {len(self.episodes)} episodes, {faults_total} faults; healed "
                   f"{len(healed)} (median {sorted(healed)[len(healed) // 2]:.0f} s)" if healed else
                   f"seed {self.seed}: {len(self.episodes)} episodes, {faults_total} faults; healed 0",
                   f"escalated {sum(1 for e in self.episodes if e.outcome == 'escalated')} (rule right: "
                   f"{sum(1 for e in self.episodes if e.rule_right)}), not handled "
                   f"{sum(1 for e in self.episodes if e.outcome == 'not handled')}, wrong actions "
                   f"{sum(len(e.wrong_actions) for e in self.episodes)}, lock breaks {len(breaks)}",
                   f"rows lost {lost}, doubled {doubled} (every table: {', '.join(self.tables)})"]
        not_drawn = [f"- {name}: {why}" for name, why in NOT_DRAWN.items()]
        if self.interrupted:
            summary.insert(0, f"INCOMPLETE: {self.interrupted}")
        text = "\n".join([f"# Soak, seed {self.seed}", "", *summary, "", *rows, "", "Not drawn:", *not_drawn, ""])
        out = ROOT / "reports" / f"soak-{self.seed}"
        out.parent.mkdir(exist_ok=True)
        out.with_suffix(".md").write_text(text)
        out.with_suffix(".json").write_text(json.dumps(
            {"seed": self.seed, "episodes": [vars(e) for e in self.episodes], "final_truth": final,
             "lock_breaks": breaks, "lost": lost, "doubled": doubled}, indent=2, default=str))
        print(text)
        passed = lost == 0 and doubled == 0 and all(ok(e) for e in self.episodes) and not self.interrupted
        print(f"soak: {'PASSED' if passed else 'FAILED'} (report {out.with_suffix('.md')})")
        return 0 if passed else 1


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--faults", type=int, required=True, help="faults to inject (one or two per episode)")
    parser.add_argument("--period", type=int, default=120, help="the live schedule's period, s")
    parser.add_argument("--episode-timeout", type=float, default=900, help="s an episode may take before the "
                                                                           "soak plays the human")
    args = parser.parse_args(argv)
    if args.faults < 1 or args.period < 30:
        parser.error("--faults must be 1 or more and --period 30 s or more")
    try:
        return Soak(LabConfig(), args.seed, args.faults, args.period, args.episode_timeout).run()
    except stack.LabError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("soak: interrupted; the schedule was put back and the loop stopped (if the soak started it)",
              file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the operator, never a traceback
        print(f"soak: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
