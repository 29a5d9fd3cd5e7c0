"""The certification profile and the upgrade gate's settings, as config.resolve() sees them."""

from __future__ import annotations

import pytest

from pytest_k8sdns.config import CERTIFICATION_MINIMUMS, CERTIFICATION_RESULTS, resolve
from pytest_k8sdns.errors import ConfigError


def _ini(values: dict[str, str]):
    return lambda name: values.get(name, "")


def test_default_profile_keeps_the_given_samples() -> None:
    s = resolve({"samples": "50", "bursts": "2"}, _ini({}))
    assert (s.profile, s.samples, s.bursts, s.results) == ("default", 50, 2, None)
    assert (s.max_p99_growth, s.p99_floor_ms, s.baseline) == (1.5, 5.0, None)


def test_certification_raises_samples_and_always_writes_results() -> None:
    s = resolve({"profile": "certification", "samples": "50", "bursts": "2"}, _ini({}))
    assert CERTIFICATION_MINIMUMS == {"samples": 2000, "bursts": 100, "burst_size": 8}
    assert (s.samples, s.bursts, s.burst_size) == (2000, 100, 8)
    assert s.results == CERTIFICATION_RESULTS == "k8sdns-results.json"


def test_certification_keeps_larger_samples_and_a_given_results_file() -> None:
    s = resolve({"samples": "5000", "results": "out/dns.json"}, _ini({"k8sdns_profile": "certification",
                                                                       "k8sdns_burst_size": "16"}))
    assert (s.profile, s.samples, s.bursts, s.burst_size, s.results) == ("certification", 5000, 100, 16, "out/dns.json")


def test_gate_settings_from_ini_and_command_line() -> None:
    s = resolve({"baseline": "before.json", "max_p99_growth": "2"}, _ini({"k8sdns_max_p99_growth": "3",
                                                                        "k8sdns_p99_floor_ms": "10"}))
    assert (s.baseline, s.max_p99_growth, s.p99_floor_ms) == ("before.json", 2.0, 10.0)


@pytest.mark.parametrize(("cli", "ini", "message"), [
    ({"profile": "gold"}, {}, "--k8sdns-profile='gold' is not a valid profile; valid values: default, certification"),
    ({}, {"k8sdns_profile": "Certification"}, "ini option k8sdns_profile='Certification' is not a valid profile"),
    ({"max_p99_growth": "0.5"}, {}, "--k8sdns-max-p99-growth='0.5' is not valid (a growth ratio must be at least 1)"),
    ({}, {"k8sdns_p99_floor_ms": "-1"}, "ini option k8sdns_p99_floor_ms='-1' is not valid (must not be negative)"),
])
def test_bad_values(cli: dict, ini: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve(cli, _ini(ini))
    assert message in str(err.value) and "\n" not in str(err.value)
