"""An Alertmanager v4 notification whose fields carry Jinja that would run a command on the control node if anything
rendered them: one alert per field the rulebooks hand over or test (each the only bad field of its alert), and last
one alert whose forwarded fields are clean but whose every other field (labels, annotations, generatorURL, endsAt)
is hostile - it does start a remediation, with all of it in ansible_eda.event. Each payload touches its own file
under `markers`: any file there means something rendered it."""
from __future__ import annotations

from pathlib import Path

FIRING = "IcebergOffloadConsecutiveFailures"
METRICS_DOWN = "IcebergOffloadMetricsDown"


def payload(markers: Path, field: str) -> str:
    """A template that creates markers/<field> when rendered, and still reads like the field's value."""
    return f"{{{{ lookup('ansible.builtin.pipe', 'touch {markers}/{field}; echo 2026-12-07T10:00:00Z') }}}}"


def _alert(alertname: str, table: str | None, job: str | None, fingerprint: str) -> dict:
    labels = {"alertname": alertname, "severity": "critical", "k2_stack": "k2-lab"}
    labels.update({"table": table} if table else {"job": job})
    return {"status": "firing", "labels": labels, "annotations": {"summary": "offload failing"},
            "startsAt": "2026-12-07T10:00:00.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": fingerprint}


def notification(markers: Path, clean_table: str) -> dict:
    """The notification; only its last alert, for `clean_table`, may start a remediation."""
    bad = []

    def hostile(name: str, alert: dict, set_field) -> None:
        set_field(alert, payload(markers, name))
        bad.append(alert)

    hostile("alertname", _alert(FIRING, "bronze_trades_kraken", None, "00000000000000a1"),
            lambda a, v: a["labels"].update(alertname=v))
    hostile("table", _alert(FIRING, "x", None, "00000000000000a2"), lambda a, v: a["labels"].update(table=v))
    hostile("startsAt", _alert(FIRING, "bronze_trades_coinbase", None, "00000000000000a3"),
            lambda a, v: a.update(startsAt=v))
    hostile("fingerprint", _alert(FIRING, "silver_trades", None, "00000000000000a4"),
            lambda a, v: a.update(fingerprint=v))
    hostile("status", _alert(FIRING, "ohlcv_1m", None, "00000000000000a5"), lambda a, v: a.update(status=v))
    hostile("job", _alert(METRICS_DOWN, None, "x", "00000000000000a6"), lambda a, v: a["labels"].update(job=v))
    hostile("k2_stack", _alert(FIRING, "ohlcv_5m", None, "00000000000000a8"), lambda a, v: a["labels"].update(k2_stack=v))
    hostile("metrics-down-startsAt", _alert(METRICS_DOWN, None, "iceberg-scheduler", "00000000000000a7"),
            lambda a, v: a.update(startsAt=v))
    clean = _alert(FIRING, clean_table, None, "00000000000000b1")
    clean["labels"].update(component=payload(markers, "label"), tier=payload(markers, "label-tier"))
    clean["annotations"] = {"summary": payload(markers, "annotation-summary"),
                            "description": payload(markers, "annotation-description")}
    clean.update(generatorURL=payload(markers, "generatorURL"), endsAt=payload(markers, "endsAt"))
    alerts = [*bad, clean]
    return {"receiver": "k2-eda", "status": "firing", "alerts": alerts, "groupLabels": {"alertname": FIRING},
            "commonLabels": {"alertname": payload(markers, "commonLabels")},
            "commonAnnotations": {"summary": payload(markers, "commonAnnotations")},
            "externalURL": payload(markers, "externalURL"), "version": "4",
            "groupKey": payload(markers, "groupKey"), "truncatedAlerts": 0}


def clean_alert(notification_: dict) -> dict:
    """The one alert of `notification` that starts a remediation."""
    return notification_["alerts"][-1]
