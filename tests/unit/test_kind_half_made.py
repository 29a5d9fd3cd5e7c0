"""A kind cluster that fails or is interrupted while it is being made is deleted, node containers
that appear after `kind delete` looked included."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_k8sdns.errors import ToolError
from pytest_k8sdns.kube import kind as kind_module
from pytest_k8sdns.kube.kind import KindCluster


def _tool(bindir: Path, name: str, body: str) -> None:
    path = bindir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.fixture()
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake docker and kind that log their argv; kind create fails; docker ps lists a node container
    of the cluster (labelled as kind labels them) until docker rm removed it."""
    log = tmp_path / "calls"
    gone = tmp_path / "removed"
    _tool(tmp_path, "docker", f'''echo "docker $*" >> {log}
case "$1" in
  info) echo 26.1.5 ;;
  ps) case "$*" in *io.x-k8s.kind.cluster=k8sdns-half*) [ -e {gone} ] || echo k8sdns-half-worker ;; esac ;;
  rm) touch {gone} ;;
esac
exit 0
''')
    _tool(tmp_path, "kind", f'''echo "kind $*" >> {log}
[ "$1" = create ] && {{ echo "ERROR: failed to create cluster: node(s) already exist" >&2; exit 1; }}
exit 0
''')
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(time, "sleep", lambda s: None)  # the waits between looks
    return log


def test_failed_create_deletes_what_was_made(calls: Path, tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="failed to create cluster"):
        KindCluster("k8sdns-half", image=None, workdir=tmp_path / "work").create()
    made = calls.read_text().splitlines()
    assert any(c.startswith("kind delete cluster --name k8sdns-half") for c in made), made
    assert "docker rm -f -v k8sdns-half-worker" in made, made


def test_interrupted_create_deletes_what_was_made(calls: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = kind_module.run_tool

    def interrupted(argv: list[str], **kwargs: object) -> str:
        if argv[:2] == ["kind", "create"]:
            raise KeyboardInterrupt  # Ctrl-C while kind makes the nodes
        return real(argv, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(kind_module, "run_tool", interrupted)
    with pytest.raises(KeyboardInterrupt):
        KindCluster("k8sdns-half", image=None, workdir=tmp_path / "work").create()
    made = calls.read_text().splitlines()
    assert any(c.startswith("kind delete cluster --name k8sdns-half") for c in made), made
    assert "docker rm -f -v k8sdns-half-worker" in made, made
