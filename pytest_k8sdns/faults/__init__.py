"""Faults to inject into kind clusters the plugin created, so each check can be shown to fail.

Users validate their own gate with them ("does my upgrade gate catch a loop?"). Every fault is a
context manager: entering applies it, leaving undoes it exactly. They refuse clusters the plugin
did not create, because they write to kube-system and into the nodes. Opt-in: nothing of the
plugin imports this package; `-p pytest_k8sdns.faults.plugin` adds the `k8sdns_faults` fixture.
"""

from __future__ import annotations

from pytest_k8sdns.faults.catalogue import RUN_INPUT_FAULTS, TARGETS
from pytest_k8sdns.faults.coredns import STUB_IP, CoreDNSFaults
from pytest_k8sdns.faults.nodelocal import NodeLocalFaults
from pytest_k8sdns.faults.nodes import NodeFaults
from pytest_k8sdns.faults.records import FAULT_MANAGER, RecordFaults


class Faults(CoreDNSFaults, NodeFaults, RecordFaults, NodeLocalFaults):
    """Fault injection on one plugin-created kind cluster: every family's faults on one object."""


__all__ = ["FAULT_MANAGER", "RUN_INPUT_FAULTS", "STUB_IP", "TARGETS", "Faults"]
