"""End to end: nothing a real `pytest --k8sdns-kind` run (conftest.nodelocal_session) writes (results file, HTML report, JUnit
XML, terminal output) holds the kind kubeconfig's client key or certificate, in any encoding."""

from __future__ import annotations

import base64
import json


def _needles(b64: str) -> set[str]:
    """The credential as written in the kubeconfig (base64 of a PEM), and each line of the PEM body."""
    pem = base64.b64decode(b64).decode()
    return {b64, b64[:64]} | {ln for ln in pem.splitlines() if ln and not ln.startswith("-----") and len(ln) >= 40}


def test_outputs_hold_no_kubeconfig_credentials(nodelocal_session: dict) -> None:
    out = nodelocal_session["out"]
    secrets = json.loads((out / "kubeconfig-secrets.json").read_text())
    assert set(secrets) == {"client-key-data", "client-certificate-data"}
    outputs = {name: (out / name).read_text(errors="replace")
               for name in ("results.json", "report.html", "junit.xml", "stdout.txt") if (out / name).exists()}
    assert {"results.json", "junit.xml", "stdout.txt"} <= set(outputs), sorted(outputs)
    leaks = {(name, which) for name, text in outputs.items() for which, value in secrets.items()
             if any(n in text for n in _needles(value))}
    assert not leaks, f"kubeconfig credentials found in: {sorted(leaks)}"
