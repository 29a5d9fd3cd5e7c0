"""The images `--k8sdns-kind` chooses: substrate/build's when the local Docker has them and the user
gave none, the user's when given, the public defaults otherwise; nothing against an existing cluster."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_k8sdns.config import DEFAULT_GLIBC_IMAGE, DEFAULT_MUSL_IMAGE, Settings
from pytest_k8sdns.kube import images

ROOT = Path(__file__).resolve().parents[2]


def test_substrate_images_are_used_when_present_and_not_given() -> None:
    settings, choices = images.choose(Settings(kind=True), given=set(), present=lambda image: True)
    assert settings.kind_image == "k8sdns/kind-node:latest"
    assert settings.glibc_image == "k8sdns/probe-glibc:py3.11-bookworm"
    assert settings.musl_image == "k8sdns/probe-musl:py3.11-musl"
    assert [c.field for c in choices] == ["kind_image", "glibc_image", "musl_image"]  # no NodeLocal asked
    assert images.header(choices).startswith("k8sdns: images node=k8sdns/kind-node:latest (built here by "
                                             "substrate/build, found in the local Docker), glibc=")


def test_an_option_given_wins_and_a_missing_image_keeps_the_public_default() -> None:
    base = Settings(kind=True, glibc_image="mine:1", kind_nodelocal=True)
    settings, choices = images.choose(base, given={"glibc_image"}, present=lambda image: "probe-musl" in image)
    assert settings.glibc_image == "mine:1" and settings.musl_image == "k8sdns/probe-musl:py3.11-musl"
    assert settings.kind_image is None  # kind's own default node image
    why = {c.field: c.why for c in choices}
    assert why["glibc_image"] == "given by --k8sdns-glibc-image"
    assert why["kind_image"] == "public default: k8sdns/kind-node:latest is not in the local Docker"
    assert "nodelocal_image" in why
    assert "node=kind default (public default" in images.header(choices)


def test_nothing_is_chosen_for_a_cluster_the_plugin_did_not_create() -> None:
    settings, choices = images.choose(Settings(context="prod"), given=set(), present=lambda image: True)
    assert (settings.glibc_image, settings.musl_image, choices) == (DEFAULT_GLIBC_IMAGE, DEFAULT_MUSL_IMAGE, [])


def test_the_names_are_the_ones_substrate_build_tags() -> None:
    env = dict(re.findall(r"^(\w+)=(\S+)", (ROOT / "substrate/versions.env").read_text(), re.M))
    probes = (ROOT / "substrate/build-probes.sh").read_text()
    series = re.search(r"^PY_SERIES=(\S+)", probes, re.M).group(1)
    tagged = {"docker tag \"$NODE_IMAGE\" k8sdns/kind-node:latest" in (ROOT / "substrate/build-node.sh").read_text()}
    assert tagged == {True}
    glibc = re.search(r'^GLIBC_IMAGE="(\S+)"', probes, re.M).group(1)
    musl = re.search(r'^MUSL_IMAGE="(\S+)"', probes, re.M).group(1)
    expand = {"PY_SERIES": series, **env}
    for template, field in ((glibc, "glibc_image"), (musl, "musl_image")):
        name = re.sub(r"\$(\w+)", lambda m: expand[m.group(1)], template)
        assert images.SUBSTRATE_IMAGES[field] == name
