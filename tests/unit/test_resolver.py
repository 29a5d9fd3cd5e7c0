"""resolv.conf parsing and the glibc/musl search-candidate model."""

from __future__ import annotations

import pytest

from pytest_k8sdns.dns.resolver import (
    ResolvConf,
    divergences,
    expected_queries,
    is_loopback,
    legacy_glibc_search_list,
    nameservers_of,
    parse_resolv_conf,
    search_candidates,
)
from pytest_k8sdns.errors import ConfigError

SEARCH = "search default.svc.cluster.local svc.cluster.local cluster.local"
POD_NDOTS5 = f"nameserver 10.96.0.10\n{SEARCH}\noptions ndots:5\n"
POD_NDOTS2 = f"nameserver 10.96.0.10\n{SEARCH}\noptions ndots:2\n"
SUFFIXES = ["default.svc.cluster.local.", "svc.cluster.local.", "cluster.local."]


def searched(name: str) -> list[str]:
    """``name`` under each pod search domain, then absolute."""
    return [f"{name}.{s}" for s in SUFFIXES] + [f"{name}."]


def absolute_first(name: str) -> list[str]:
    """``name`` absolute, then under each pod search domain (glibc with dots >= ndots)."""
    return [f"{name}."] + [f"{name}.{s}" for s in SUFFIXES]


FIVE_DOTS = "a.b.c.d.e.f"


@pytest.mark.parametrize(
    ("libc", "conf", "name", "expected"),
    [
        # ndots 5 (the kubelet default): only a name with 5 dots skips the search list first.
        ("glibc", POD_NDOTS5, "svc", searched("svc")),
        ("musl", POD_NDOTS5, "svc", searched("svc")),
        ("glibc", POD_NDOTS5, "svc.ns", searched("svc.ns")),
        ("musl", POD_NDOTS5, "svc.ns", searched("svc.ns")),
        ("glibc", POD_NDOTS5, "api.example.com", searched("api.example.com")),
        ("musl", POD_NDOTS5, "api.example.com", searched("api.example.com")),
        ("glibc", POD_NDOTS5, "kubernetes.default.svc.cluster.local.", ["kubernetes.default.svc.cluster.local."]),
        ("musl", POD_NDOTS5, "kubernetes.default.svc.cluster.local.", ["kubernetes.default.svc.cluster.local."]),
        ("glibc", POD_NDOTS5, FIVE_DOTS, absolute_first(FIVE_DOTS)),
        ("musl", POD_NDOTS5, FIVE_DOTS, [f"{FIVE_DOTS}."]),
        # ndots 2 (a dnsConfig override): api.example.com now has enough dots.
        ("glibc", POD_NDOTS2, "svc", searched("svc")),
        ("musl", POD_NDOTS2, "svc", searched("svc")),
        ("glibc", POD_NDOTS2, "svc.ns", searched("svc.ns")),
        ("musl", POD_NDOTS2, "svc.ns", searched("svc.ns")),
        ("glibc", POD_NDOTS2, "api.example.com", absolute_first("api.example.com")),
        ("musl", POD_NDOTS2, "api.example.com", ["api.example.com."]),
        ("glibc", POD_NDOTS2, "kubernetes.default.svc.cluster.local.", ["kubernetes.default.svc.cluster.local."]),
        ("musl", POD_NDOTS2, "kubernetes.default.svc.cluster.local.", ["kubernetes.default.svc.cluster.local."]),
        ("glibc", POD_NDOTS2, FIVE_DOTS, absolute_first(FIVE_DOTS)),
        ("musl", POD_NDOTS2, FIVE_DOTS, [f"{FIVE_DOTS}."]),
    ],
)
def test_search_candidates(libc: str, conf: str, name: str, expected: list[str]) -> None:
    assert search_candidates(libc, conf, name) == expected


def test_api_example_com_costs_eight_queries_under_ndots5() -> None:
    # REFERENCE.md: 4 names x (A + AAAA) before the answer, with either libc.
    for libc in ("glibc", "musl"):
        tried = expected_queries(libc, POD_NDOTS5, "api.example.com", {"api.example.com"})
        assert len(tried) * 2 == 8


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_expected_queries_stop_at_the_first_name_that_exists(libc: str) -> None:
    existing = {"kubernetes.default.svc.cluster.local"}
    assert expected_queries(libc, POD_NDOTS5, "kubernetes.default", existing) == [
        "kubernetes.default.default.svc.cluster.local.",
        "kubernetes.default.svc.cluster.local.",
    ]


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_expected_queries_accepts_a_predicate_and_tries_everything_when_nothing_exists(libc: str) -> None:
    assert expected_queries(libc, POD_NDOTS5, "nosuch", lambda q: False) == searched("nosuch")
    assert expected_queries(libc, POD_NDOTS5, "svc", lambda q: q == "svc.svc.cluster.local.") == searched("svc")[:2]


@pytest.mark.parametrize(
    ("libc", "expected"),
    [
        # musl ends the search on NODATA (EAI_NODATA); glibc keeps searching past it.
        ("musl", searched("api.example.com")[:3]),
        ("glibc", searched("api.example.com")),
    ],
)
def test_nodata_under_a_search_domain(libc: str, expected: list[str]) -> None:
    tried = expected_queries(
        libc, POD_NDOTS5, "api.example.com", {"api.example.com."}, nodata={"api.example.com.cluster.local."}
    )
    assert tried == expected


@pytest.mark.parametrize(
    ("libc", "expected"),
    [
        # musl: SERVFAIL is EAI_AGAIN and stops; glibc tries the next search element.
        ("musl", searched("svc")[:1]),
        ("glibc", searched("svc")[:2]),
    ],
)
def test_servfail_under_a_search_domain(libc: str, expected: list[str]) -> None:
    tried = expected_queries(
        libc, POD_NDOTS5, "svc", {"svc.svc.cluster.local"}, servfail={"svc.default.svc.cluster.local"}
    )
    assert tried == expected


def test_glibc_no_tld_query_drops_the_bare_single_label() -> None:
    conf = POD_NDOTS5 + "options no-tld-query\n"
    assert search_candidates("glibc", conf, "svc") == searched("svc")[:-1]
    assert search_candidates("glibc", conf, "svc.ns") == searched("svc.ns")
    # musl has no such option: it still asks for the bare name.
    assert search_candidates("musl", conf, "svc") == searched("svc")


def test_root_on_the_search_list() -> None:
    conf = "nameserver 10.0.0.10\nsearch . cluster.local\noptions ndots:5\n"
    # glibc queries "svc." for the "." entry and does not repeat it at the end.
    assert search_candidates("glibc", conf, "svc") == ["svc.", "svc.cluster.local."]
    # musl builds "svc..", which res_mkquery rejects, so the entry is skipped.
    assert search_candidates("musl", conf, "svc") == ["svc.cluster.local.", "svc."]


def test_over_long_candidate_ends_glibc_search_but_musl_skips_it() -> None:
    name = ".".join(c * 63 for c in "abc")
    conf = f"nameserver 10.0.0.10\nsearch {'x' * 63}.example short.example\noptions ndots:5\n"
    assert search_candidates("glibc", conf, name) == [f"{name}."]
    assert search_candidates("musl", conf, name) == [f"{name}.short.example.", f"{name}."]


def test_search_domain_with_trailing_dot_gives_one_trailing_dot() -> None:
    conf = "search cluster.local.\noptions ndots:5\n"
    for libc in ("glibc", "musl"):
        assert search_candidates(libc, conf, "svc") == ["svc.cluster.local.", "svc."]


def test_unknown_libc() -> None:
    with pytest.raises(ConfigError, match=r"^unknown libc 'uclibc'; use 'glibc' or 'musl'$"):
        search_candidates("uclibc", POD_NDOTS5, "svc")
    with pytest.raises(ConfigError):
        parse_resolv_conf(POD_NDOTS5, "bionic")


@pytest.mark.parametrize("name", ["", ".svc", "svc..ns", "svc.."])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid DNS name"):
        search_candidates("glibc", POD_NDOTS5, name)


# -- parsing ------------------------------------------------------------------------------

KUBELET = (
    "search default.svc.cluster.local svc.cluster.local cluster.local example.internal\n"
    "nameserver 10.96.0.10\n"
    "options ndots:5\n"
)


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_parse_kubelet_resolv_conf(libc: str) -> None:
    conf = parse_resolv_conf(KUBELET, libc)
    assert isinstance(conf, ResolvConf)
    assert conf.libc == libc
    assert conf.nameservers == ["10.96.0.10"]
    assert conf.search == ["default.svc.cluster.local", "svc.cluster.local", "cluster.local", "example.internal"]
    assert (conf.ndots, conf.timeout, conf.attempts) == (5, 5, 2)
    assert conf.ignored_lines == []


@pytest.mark.parametrize(
    ("libc", "options", "expected"),
    [
        ("glibc", "ndots:20 timeout:45 attempts:9", (15, 30, 5)),
        ("musl", "ndots:20 timeout:45 attempts:9", (15, 45, 9)),
        ("musl", "ndots:99 timeout:90 attempts:12", (15, 60, 10)),
        ("glibc", "ndots:0 timeout:1 attempts:1", (0, 1, 1)),
        ("musl", "ndots:0 timeout:1 attempts:1", (0, 1, 1)),
        # glibc's strtol reads no digits as 0; musl wants a digit and keeps its default.
        ("glibc", "ndots:x", (0, 5, 2)),
        ("musl", "ndots:x", (1, 5, 2)),
    ],
)
def test_option_caps(libc: str, options: str, expected: tuple[int, int, int]) -> None:
    conf = parse_resolv_conf(f"nameserver 10.0.0.1\noptions {options}\n", libc)
    assert (conf.ndots, conf.timeout, conf.attempts) == expected


def test_glibc_flags_and_negation() -> None:
    text = "options rotate edns0 single-request-reopen use-vc\noptions -rotate no-tld-query bogus\n"
    conf = parse_resolv_conf(text, "glibc")
    assert conf.options == {"edns0": True, "single-request-reopen": True, "use-vc": True, "no-tld-query": True}
    assert conf.ignored_options == ["bogus"]
    assert conf.no_tld_query


def test_musl_ignores_every_option_but_three() -> None:
    text = "options single-request rotate use-vc edns0 ndots:3\n"
    conf = parse_resolv_conf(text, "musl")
    assert conf.options == {}
    assert conf.ignored_options == ["single-request", "rotate", "use-vc", "edns0"]
    assert conf.ndots == 3


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_last_search_line_wins_and_nameservers_cap_at_three(libc: str) -> None:
    text = (
        "search a.example\nsearch b.example c.example\n"
        "nameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n"
        "nameserver not-an-ip\n"
    )
    conf = parse_resolv_conf(text, libc)
    assert conf.search == ["b.example", "c.example"]
    assert conf.nameservers == ["10.0.0.1", "fe80::1%eth0", "10.0.0.3"]
    assert conf.dropped_nameservers == ["10.0.0.4", "not-an-ip"]


@pytest.mark.parametrize(("libc", "expected"), [("glibc", ["a.example"]), ("musl", ["a.example", "b.example"])])
def test_domain_line(libc: str, expected: list[str]) -> None:
    assert parse_resolv_conf("domain a.example b.example\n", libc).search == expected


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_no_nameserver_means_localhost(libc: str) -> None:
    conf = parse_resolv_conf("search example.org\n", libc)
    assert conf.nameservers == []
    assert conf.effective_nameservers == ["127.0.0.1"]
    assert parse_resolv_conf("nameserver 10.0.0.1\n", libc).effective_nameservers == ["10.0.0.1"]


def test_glibc_skips_comment_lines() -> None:
    conf = parse_resolv_conf("# search a.example\n; nameserver 10.0.0.9\nsearch b.example\n", "glibc")
    assert conf.search == ["b.example"]
    assert conf.nameservers == []


def _search_line(length: int) -> str:
    line = "search "
    i = 0
    while len(line) < length - 12:
        line += f"d{i:03d}.example "
        i += 1
    line = line.rstrip()
    return line + " " + "z" * (length - len(line) - 1)


@pytest.mark.parametrize("newline", ["\n", ""])
@pytest.mark.parametrize(("length", "musl_reads_it"), [(200, True), (254, True), (255, False), (300, False)])
def test_musl_line_length_boundary(length: int, musl_reads_it: bool, newline: str) -> None:
    # fgets(line, 256) holds 255 bytes; a line needs its newline (or EOF) inside them.
    line = _search_line(length)
    assert len(line) == length
    text = "nameserver 10.0.0.10\n" + line + newline
    musl = parse_resolv_conf(text, "musl")
    glibc = parse_resolv_conf(text, "glibc")
    assert glibc.search == line.split()[1:]
    if musl_reads_it:
        assert musl.search == glibc.search
        assert musl.ignored_lines == []
    else:
        assert musl.search == []
        assert musl.ignored_lines == [2]


def test_legacy_glibc_search_list() -> None:
    eight = [f"d{i}.example" for i in range(8)]
    assert legacy_glibc_search_list(eight) == eight[:6]
    long = ["a" * 100 + ".example", "b" * 100 + ".example", "c" * 100 + ".example"]
    kept = legacy_glibc_search_list(long)
    assert kept[:2] == long[:2]
    assert len(" ".join(kept)) == 255


def test_nameservers_of_is_uncapped() -> None:
    text = "nameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver ::1\n"
    assert nameservers_of(text) == ["127.0.0.53", "10.0.0.2", "10.0.0.3", "::1"]


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("127.0.0.1", True), ("127.0.0.53", True), ("127.1.2.3", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("10.96.0.10", False), ("169.254.20.10", False), ("fe80::1%eth0", False), ("not-an-ip", False)],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


# -- divergences --------------------------------------------------------------------------


def test_no_divergence_for_short_names() -> None:
    assert divergences(POD_NDOTS5, ["svc", "svc.ns", "api.example.com", "kubernetes.default.svc.cluster.local."]) == []


def test_divergence_for_names_with_enough_dots() -> None:
    reasons = divergences(POD_NDOTS2, ["svc", "api.example.com"])
    assert reasons == [
        (
            "`api.example.com` has 2 dots (ndots 2): musl queries only `api.example.com.`, "
            "glibc then also tries 3 search domains if it does not exist"
        )
    ]


def test_divergence_when_a_dotted_name_exists_only_under_a_search_domain() -> None:
    conf = f"nameserver 10.96.0.10\n{SEARCH}\noptions ndots:1\n"
    existing = {"svc.ns.svc.cluster.local"}
    reasons = divergences(conf, ["svc.ns"], existing=existing)
    assert len(reasons) == 1
    assert reasons[0].startswith("`svc.ns`: glibc resolves it as `svc.ns.svc.cluster.local.` after 3 names, musl fails")
    assert "musl skips the search list" in reasons[0]


def test_divergence_depends_on_where_the_name_exists() -> None:
    existing = {"api.example.com"}
    assert divergences(POD_NDOTS2, ["api.example.com"], existing=existing) == []
    # NXDOMAIN for the absolute name, but it exists under a search domain and ndots is 2.
    existing = {"api.example.com.cluster.local"}
    reasons = divergences(POD_NDOTS2, ["api.example.com"], existing=existing)
    assert reasons and "musl fails after 1 name" in reasons[0]


def test_divergence_for_long_search_line_and_options() -> None:
    line = _search_line(300)
    reasons = divergences(f"nameserver 10.0.0.10\n{line}\noptions ndots:5 single-request-reopen\n", ["svc"])
    assert reasons[0].startswith("line 2 (`search ...`) is 300 bytes, more than the 254 musl reads per line")
    assert "option `single-request-reopen`: glibc honours it, musl ignores it" in reasons
    assert any(r.startswith("`svc`: glibc tries") for r in reasons)
    assert all("\n" not in r for r in reasons)


def test_divergence_in_query_count_only() -> None:
    # musl drops the over-long search line, so it asks for the bare name straight away.
    text = f"nameserver 10.0.0.10\n{_search_line(280)}\noptions ndots:5\n"
    reasons = divergences(text, ["printer"], existing={"printer"})
    assert reasons[-1].startswith("`printer`: both resolve it, but glibc sends ")
    assert reasons[-1].endswith("and musl 1 name (each as A and AAAA)")


def test_empty_search_line_clears_musl_but_not_glibc() -> None:
    text = "search a.example\nsearch\n"
    assert parse_resolv_conf(text, "glibc").search == ["a.example"]
    assert parse_resolv_conf(text, "musl").search == []
