"""Corefiles: parse them (`parser`), judge them (`rules`) and edit them without text patterns
(`edit`). The names below are the public API: `corefile.parse`, `corefile.analyse`, ..."""

from __future__ import annotations

from pytest_k8sdns.dns.corefile.edit import (
    add_cluster_templates,
    drop_reverse_zones,
    is_reverse_zone,
    plugin,
    remove_option,
    remove_plugin,
    server_block,
    set_cache_denial_ttl,
    set_forward,
    set_kubernetes_zones,
    set_option,
    set_plugin_args,
)
from pytest_k8sdns.dns.corefile.parser import (
    Directive,
    ServerBlock,
    Span,
    is_placeholder,
    parse,
    parse_literal,
    split_key,
)
from pytest_k8sdns.dns.corefile.rules import (
    ERROR,
    INFO,
    WARNING,
    Finding,
    analyse,
    forward_hosts,
    forwards_to_resolv_conf,
    pod_records_mode,
)

__all__ = [
    "ERROR", "INFO", "WARNING", "Directive", "Finding", "ServerBlock", "Span", "add_cluster_templates", "analyse",
    "drop_reverse_zones", "forward_hosts",
    "forwards_to_resolv_conf", "pod_records_mode",
    "is_placeholder", "is_reverse_zone", "parse", "parse_literal", "plugin", "remove_option", "remove_plugin",
    "server_block", "set_cache_denial_ttl", "set_forward", "set_kubernetes_zones", "set_option", "set_plugin_args",
    "split_key",
]
