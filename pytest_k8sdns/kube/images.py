"""The images a kind cluster the plugin creates runs.

`pytest --k8sdns-kind` on a machine where substrate/build made the node, probe and node-cache
images uses those (a machine without a registry can pull nothing else); elsewhere it keeps the public
defaults (kind's own node image, python:3.12-slim and -alpine). An image option given on the command
line or in the ini file always wins. Against a cluster the plugin did not create, the local Docker
says nothing about what the nodes can run, so nothing is chosen there.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable, Collection
from typing import Any

from pytest_k8sdns.config import DEFAULT_NODELOCAL_IMAGE, Settings

#: Settings field -> the image substrate/build tags (build-node.sh, build-probes.sh, build-nodecache.sh)
SUBSTRATE_IMAGES: dict[str, str] = {
    "kind_image": "k8sdns/kind-node:latest",
    "glibc_image": "k8sdns/probe-glibc:py3.11-bookworm",
    "musl_image": "k8sdns/probe-musl:py3.11-musl",
    "nodelocal_image": DEFAULT_NODELOCAL_IMAGE,
}
#: Settings field -> its command-line option, for the header
FLAGS = {"kind_image": "--k8sdns-kind-image", "glibc_image": "--k8sdns-glibc-image",
         "musl_image": "--k8sdns-musl-image", "nodelocal_image": "--k8sdns-nodelocal-image"}
#: what the header calls each image
ROLES = {"kind_image": "node", "glibc_image": "glibc", "musl_image": "musl", "nodelocal_image": "node-cache"}


def in_local_docker(image: str) -> bool:
    """True when the host's Docker has `image` (False without Docker: then nothing local is chosen)."""
    try:
        return subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclasses.dataclass(frozen=True)
class Choice:
    """One image of the run and why it was chosen."""

    field: str
    image: str | None  # None: kind's own default node image
    why: str

    def describe(self) -> str:
        return f"{ROLES[self.field]}={self.image or 'kind default'} ({self.why})"


def choose(settings: Settings, given: Collection[str],
           present: Callable[[str], bool] = in_local_docker) -> tuple[Settings, list[Choice]]:
    """The settings with substrate/build's images in place of the defaults the user left alone, when
    the local Docker has them and the plugin creates the cluster; and each image's reason."""
    if not settings.kind:
        return settings, []
    fields = [f for f in SUBSTRATE_IMAGES if f != "nodelocal_image" or settings.kind_nodelocal]
    changes: dict[str, Any] = {}
    choices: list[Choice] = []
    for field in fields:
        local = SUBSTRATE_IMAGES[field]
        if field in given:
            choices.append(Choice(field, getattr(settings, field), f"given by {FLAGS[field]}"))
        elif present(local):
            changes[field] = local
            choices.append(Choice(field, local, "built here by substrate/build, found in the local Docker"))
        else:
            choices.append(Choice(field, getattr(settings, field), f"public default: {local} is not in the local Docker"))
    return dataclasses.replace(settings, **changes), choices


def header(choices: list[Choice]) -> str:
    """The header line: `k8sdns: images node=... (why), glibc=... (why), ...`."""
    return "k8sdns: images " + ", ".join(c.describe() for c in choices)


def facts(choices: list[Choice]) -> dict[str, dict[str, str | None]]:
    """The results file's `cluster.images`: {role: {"image", "why"}}."""
    return {ROLES[c.field]: {"image": c.image, "why": c.why} for c in choices}
