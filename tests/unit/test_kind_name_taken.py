"""A kind cluster of the same name that another run made is refused, never deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_k8sdns.errors import ToolError
from pytest_k8sdns.kube.kind import KindCluster


def _tool(bindir: Path, name: str, body: str) -> None:
    path = bindir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def test_existing_cluster_of_that_name_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "calls"
    _tool(tmp_path, "docker", f'echo "docker $*" >> {calls}\n[ "$1" = info ] && echo 26.1.5\nexit 0\n')
    _tool(tmp_path, "kind", f'echo "kind $*" >> {calls}\n[ "$1 $2" = "get clusters" ] && echo k8sdns-neg\nexit 0\n')
    monkeypatch.setenv("PATH", str(tmp_path))
    kind = KindCluster("k8sdns-neg", image=None, workdir=tmp_path)
    with pytest.raises(ToolError) as err:
        kind.create()
    kind.delete()  # what a run's cleanup does after a failed start
    assert str(err.value) == ("a kind cluster named k8sdns-neg already exists and this run did not make it; wait for "
                              "the run that owns it, or delete it with `kind delete cluster --name k8sdns-neg`")
    made = calls.read_text().splitlines()
    assert not [c for c in made if c.startswith(("kind create", "kind delete", "docker rm"))], made
