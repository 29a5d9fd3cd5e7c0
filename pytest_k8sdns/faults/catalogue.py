"""The fault catalogue as data: which checks of the packaged suite each fault must make fail, and
the faults that are a run's input rather than a change to the cluster."""

from __future__ import annotations

#: Which conformance checks (test functions of the packaged suite) each fault must make fail.
#: tests/e2e/test_negative_controls.py proves every entry on a real kind cluster, and
#: tests/unit/test_fault_catalogue.py that every check of the suite has at least one fault.
TARGETS: dict[str, tuple[str, ...]] = {
    "loop": ("test_dns_pods_ready", "test_no_loop_in_logs", "test_node_resolv_conf_not_loopback",
             "test_ready_endpoint"),
    "coredns_killed_during_run": ("test_no_restarts_during_run",),
    "loopback_upstream_without_loop": ("test_corefile_analysis",),
    "packet_loss": ("test_lookup_latency", "test_retry_signature"),
    "coredns_cpu_starved": ("test_server_latency", "test_capacity"),
    "node_client_loss": ("test_lookup_latency", "test_retry_signature", "test_every_replica_answers"),
    "replica_silent": ("test_every_replica_answers", "test_lookup_latency"),
    "musl_search_limit": ("test_resolv_conf_shape", "test_dns_config_applied", "test_partial_names"),
    "musl_image_runs_glibc": ("test_queries_per_lookup",),
    "cluster_domain_mismatch": ("test_cluster_name_raw", "test_cluster_name_libc", "test_partial_names",
                                "test_service_a", "test_service_srv", "test_service_ptr", "test_headless_a",
                                "test_dns_version", "test_pod_hostname_subdomain", "test_external_name_cname",
                                "test_long_search_list", "test_host_network_pods", "test_srv_through_search_list"),
    "tcp_refused": ("test_cluster_name_raw", "test_big_answer_truncated_then_whole_over_tcp",
                    "test_big_answer_every_address"),
    "no_reverse_zone": ("test_service_ptr",),
    # dual-stack (conformance/test_dualstack.py): proven by tests/e2e/test_kind_dualstack.py
    "no_ip6_reverse_zone": ("test_service_ptr_ipv6",),
    "aaaa_suppressed": ("test_service_aaaa_raw", "test_service_aaaa_libc"),
    "ipv6_dns_dropped": ("test_cluster_name_over_ipv6_raw", "test_cluster_name_over_ipv6_libc"),
    "not_ready_published": ("test_headless_a", "test_headless_srv", "test_srv_through_search_list"),
    "etc_hosts_unmanaged": ("test_pod_own_names",),
    "underscore_refused": ("test_search_path_underscore_and_dot",),
    "dns_only_to_cluster_dns": ("test_dns_config_nameserver_pod",),
    "pods_disabled": ("test_pod_ip_records",),
    "upstream_down": ("test_upstream_name",),
    "upstream_slow": ("test_external_latency",),
    "nodelocal_without_force_tcp": ("test_cluster_zone_forwards_over_tcp",),
    "nodelocal_silent_on": ("test_answers_on_every_node", "test_health_and_setup_errors", "test_caches"),
    "nodelocal_absent_from": ("test_daemonset_on_every_node",),
    "nodelocal_long_denial_ttl": ("test_new_service_visible_within_denial_ttl",),
    "coredns_without_lameduck": ("test_dns_during_change",),
    "stale_udp_conntrack": ("test_dns_during_change",),
    "nodelocal_gone_during_rollout": ("test_dns_during_change",),
    "coredns_long_denial_ttl": ("test_negative_window",),
    "coredns_api_cut": ("test_new_names_answer_soon", "test_external_name_change"),
}

#: Faults that are a run's input, not a change to the cluster: how to give them.
RUN_INPUT_FAULTS: dict[str, str] = {
    # an "Alpine" image whose programs resolve through glibc (as glibc-on-Alpine images do): the
    # queries its pods send follow glibc's search rules, not the musl ones the suite holds it to
    "musl_image_runs_glibc": "--k8sdns-musl-image=<a glibc image>",
}
