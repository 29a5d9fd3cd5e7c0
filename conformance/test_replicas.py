"""Check 15: every cluster-DNS replica answers every node, directly by pod IP, over UDP and TCP, as
the Service does. A replica that is Ready but silent, a node whose clients lose queries, or a
replica that answers differently is named."""

from __future__ import annotations

import pytest

from pytest_k8sdns.verdict.expect import expect
from pytest_k8sdns.verdict.pernode import node_verdicts


@pytest.mark.k8sdns_check(15)
@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_every_replica_answers(dns_paths, k8sdns_settings, k8sdns_record, proto):
    """From each chosen node, kubernetes.default.svc.<domain> A asked of each cluster-DNS pod and of
    the Service; each cell is judged by the error budget, and the failures are placed."""
    matrix = dns_paths.matrix(proto)
    k8sdns_record.add(*matrix.measurements())
    header, rows = matrix.table()
    k8sdns_record.table(f"answered of sent over {proto.upper()}", header, rows)
    causes = matrix.causes(k8sdns_settings.max_error_rate)
    k8sdns_record.add(*node_verdicts(matrix.failing_nodes(k8sdns_settings.max_error_rate), matrix.nodes,
                                     {"proto": proto}))
    expect(not causes, f"direct {proto.upper()} queries from {len(matrix.nodes)} nodes to "
                       f"{len(matrix.replicas)} cluster-DNS replicas",
           f"every replica answers every node like the Service {sorted(matrix.expected_answer())}",
           "; ".join(c.text for c in causes),
           "a replica that is Ready but silent or wrong: look at its logs and at the node it runs on; a node "
           "whose clients lose queries: check its conntrack table (conntrack -S), firewall and CNI")
