"""Check 18's pure parts: the addresses of the big name, which libc falls back to TCP, and the
--k8sdns-strict-clients flag with its ini twin."""

from __future__ import annotations

import pytest

from pytest_k8sdns.config import resolve
from pytest_k8sdns.dns import bigname
from pytest_k8sdns.errors import ConfigError


def test_forty_test_net_addresses_make_an_answer_over_512_bytes() -> None:
    ips = bigname.addresses()
    assert len(ips) == bigname.ADDRESSES == 40 and ips[0] == "192.0.2.1" and ips[-1] == "192.0.2.40"
    # header 12 + question (~45) + 16 bytes per compressed A record
    assert 12 + 45 + 16 * len(ips) > 512
    with pytest.raises(ValueError):
        bigname.addresses(255)


@pytest.mark.parametrize(("libc", "version", "falls_back"), [
    ("glibc", "2.36", True), ("glibc", None, True), ("musl", "1.2.3", False), ("musl", "1.2.4", True),
    ("musl", "1.2.5", True), ("musl", None, None), ("musl", "1.1.24", False)])
def test_which_libc_asks_again_over_tcp(libc: str, version: str | None, falls_back: bool | None) -> None:
    assert bigname.falls_back_to_tcp(libc, version) is falls_back


def test_strict_clients_is_a_flag_with_an_ini_twin() -> None:
    assert resolve({"strict_clients": "true"}, lambda name: "").strict_clients is True
    assert resolve({}, lambda name: "yes" if name == "k8sdns_strict_clients" else "").strict_clients is True
    assert resolve({}, lambda name: "").strict_clients is False
    with pytest.raises(ConfigError, match="k8sdns_strict_clients"):
        resolve({}, lambda name: "maybe" if name == "k8sdns_strict_clients" else "")
