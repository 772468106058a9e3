# -*- coding: utf-8 -*-
# PRIVATE to this project's modules (offload_notify, offload_incident, offload_diagnosis): take secrets out of whatever
# leaves the run (a notification, an incident record, the diagnosis and so every report and artifact built on it).
# Evidence lines quote the stack's own logs, which may carry a password in a connection string or a "password="
# option; the caller's no_log values are removed wherever they appear, in the forms they take in URLs and JSON.
# Pure functions. Imported as ansible.module_utils.offload_redact.
from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus, urlsplit

MASK = "********"  # what Ansible prints for a no_log value

# Names whose value is a credential (dict keys, "name=value" / "name: value" in text).
SECRET_NAME = r"[A-Za-z0-9_.-]*(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|access[_-]?key|routing[_-]?key|" \
              r"private[_-]?key|credential)[A-Za-z0-9_.-]*"
SECRET_KEY = re.compile(rf"^{SECRET_NAME}$", re.I)
# name=value, name: value, "name": "value", name='value'; a quoted value ends at its closing quote, a bare one at
# whitespace or a delimiter.
_ASSIGNMENT = re.compile(rf"(?P<name>\b{SECRET_NAME})(?P<sep>[\"']?\s*[=:]\s*)"
                         r"(?:(?P<quote>[\"'])(?P<quoted>.*?)(?P=quote)|(?P<bare>[^\s\"',;&}\]\)]+))", re.I)
# scheme://user:password@host and scheme://token@host
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/\s:@]*)(?::(?P<password>[^/\s@]*))?@")
_AUTH_HEADER = re.compile(r"\b(?P<name>(?:Proxy-)?Authorization)(?P<sep>[\"']?\s*[:=]\s*[\"']?)"
                          r"(?P<value>(?:(?:Basic|Bearer|Token|Digest)\s+)?[^\s\"',;]+)", re.I)
_BEARER = re.compile(r"\b(?P<kind>Bearer)\s+(?P<value>[A-Za-z0-9._~+/=-]{8,})")


def secret_variants(secrets) -> list[str]:
    """Each non-empty secret as it may appear: verbatim, URL-encoded (path and form) and JSON-escaped; longest first
    so that a secret containing another is masked whole."""
    out = set()
    for secret in secrets or []:
        if secret is None or isinstance(secret, bool):
            continue
        text = str(secret)
        if not text:
            continue
        out.update({text, quote(text, safe=""), quote_plus(text), json.dumps(text)[1:-1]})
    return sorted(out, key=lambda s: (-len(s), s))


def _assignment(match: re.Match) -> str:
    if match.group("quote"):
        return f"{match.group('name')}{match.group('sep')}{match.group('quote')}{MASK}{match.group('quote')}"
    return f"{match.group('name')}{match.group('sep')}{MASK}"


def _userinfo(match: re.Match) -> str:
    if match.group("password") is None:  # scheme://token@host: the user part is the credential
        return f"{match.group('scheme')}{MASK}@"
    return f"{match.group('scheme')}{match.group('user')}:{MASK}@"


def scrub_text(text: str, variants: list[str]) -> str:
    """text without the secrets (variants from secret_variants) and without credential patterns."""
    for variant in variants:
        text = text.replace(variant, MASK)
    text = _USERINFO.sub(_userinfo, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group('name')}{m.group('sep')}{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m.group('kind')} {MASK}", text)
    return _ASSIGNMENT.sub(_assignment, text)


def scrub(value, secrets=(), _variants: list[str] | None = None, _secret_key: bool = False):
    """A copy of value (dicts, lists, strings, numbers) with every secret masked: the values in `secrets`, the value
    of any key named like a credential (password, token, secret, api_key, ...), URL userinfo, Authorization headers
    and name=value credentials in text."""
    variants = secret_variants(secrets) if _variants is None else _variants
    if isinstance(value, dict):
        return {scrub_text(str(k), variants): scrub(v, _variants=variants,
                                                    _secret_key=_secret_key or bool(SECRET_KEY.match(str(k))))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, _variants=variants, _secret_key=_secret_key) for v in value]
    if _secret_key and value not in (None, "") and not isinstance(value, bool):
        return MASK
    if isinstance(value, str):
        return scrub_text(value, variants)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and any(v == str(value) for v in variants):
        return MASK
    return value


def endpoint(url: str, hide_path: bool = False) -> str:
    """A URL as it may be shown: no userinfo, no query or fragment; with hide_path only scheme://host[:port] (a
    Slack webhook's path is its secret)."""
    try:
        parts = urlsplit(str(url).strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<malformed URL>"
    if ":" in host:
        host = f"[{host}]"
    path = "/..." if hide_path and parts.path not in ("", "/") else ("" if hide_path else parts.path)
    return f"{parts.scheme}://{host}{port}{path}"
