"""Settings resolution: command line over ini over default, and one-line errors."""

from __future__ import annotations

import pytest

from pytest_k8sdns.config import OPTIONS, Settings, resolve
from pytest_k8sdns.errors import ConfigError


def _ini(values: dict[str, str]):
    return lambda name: values.get(name, "")


def test_defaults_match_the_reference_bounds() -> None:
    s = resolve({}, _ini({}))
    assert (s.p50_ms, s.p99_ms, s.max_error_rate, s.max_retry_signatures) == (20.0, 100.0, 0.001, 0)
    assert not s.active


def test_command_line_wins_over_ini() -> None:
    s = resolve({"p99_ms": "50", "context": "prod"}, _ini({"k8sdns_p99_ms": "70", "k8sdns_p50_ms": "5"}))
    assert s.p99_ms == 50.0 and s.p50_ms == 5.0 and s.active and s.context == "prod"


def test_every_option_has_an_ini_twin_and_a_field() -> None:
    for opt in OPTIONS:
        assert opt.ini == "k8sdns_" + opt.name and opt.name in Settings.__dataclass_fields__
        assert getattr(Settings(), opt.name) == opt.default


@pytest.mark.parametrize(("cli", "ini", "message"), [
    ({"p50_ms": "-1"}, {}, "--k8sdns-p50-ms='-1' is not valid (must not be negative)"),
    ({}, {"k8sdns_samples": "many"}, "ini option k8sdns_samples='many' is not valid"),
    ({"kind": True, "context": "x"}, {}, "--k8sdns-kind and --k8sdns-context exclude each other; pick one"),
])
def test_bad_values(cli: dict, ini: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve(cli, _ini(ini))
    assert message in str(err.value) and "\n" not in str(err.value)
