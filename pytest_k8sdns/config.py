"""The settings in effect for a run, resolved once from the command line and ini twins."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from pytest_k8sdns.errors import ConfigError

#: Public images used in clusters the plugin does not build images for.
DEFAULT_GLIBC_IMAGE = "python:3.12-slim"
DEFAULT_MUSL_IMAGE = "python:3.12-alpine"
#: The node-cache image substrate/build-nodecache.sh makes (NODECACHE_VERSION in substrate/versions.env).
DEFAULT_NODELOCAL_IMAGE = "k8sdns/node-cache:0.1.0"
PROFILES = ("default", "certification")
#: Sample sizes the certification profile raises smaller values to: a p99 of 2000 lookups rests on
#: the 20 slowest (300 give 3), and 100 bursts of 8 see a 0.5 percent loss with 98 percent certainty.
CERTIFICATION_MINIMUMS = {"samples": 2000, "bursts": 100, "burst_size": 8}
#: What certification writes when --k8sdns-results / --html are not given (in the current directory).
CERTIFICATION_RESULTS = "k8sdns-results.json"
CERTIFICATION_HTML = "k8sdns-report.html"


@dataclasses.dataclass(frozen=True)
class Option:
    """One setting: its command-line flag, ini twin, type, default and help."""

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    #: the unit of its value (ms, s, 1/s), written once here: names ending in _ms say it too
    unit: str = ""
    #: a bound a check judges by, shown in the report header as the run's thresholds
    threshold: bool = False

    @property
    def flag(self) -> str:
        return "--k8sdns-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "k8sdns_" + self.name


def _checked(name: str, convert: Callable[[str], Any], ok: Callable[[Any], bool], why: str) -> Callable[[str], Any]:
    """A value parser: convert, then refuse what `ok` rejects with `why`. Its name is the kind of
    value a bad-value message asks for ("expected a positive float like 100.0")."""

    def parse(text: str) -> Any:
        value = convert(text)
        if not ok(value):
            raise ValueError(why)
        return value

    parse.__name__ = name
    return parse


_positive_float = _checked("_positive_float", float, lambda v: v >= 0, "must not be negative")
_growth = _checked("_growth", float, lambda v: v >= 1, "a growth ratio must be at least 1")
_nonnegative_int = _checked("_nonnegative_int", int, lambda v: v >= 0, "must not be negative")
_budget = _checked("_budget", float, lambda v: math.isfinite(v) and v > 0, "a query budget must be a finite number above 0")
_positive_int = _checked("_positive_int", int, lambda v: v >= 1, "must be at least 1")
_share = _checked("_share", float, lambda v: 0 <= v <= 1, "a share must be between 0 and 1")
_load_rate = _checked("_load_rate", float, lambda v: 100 <= v <= 200_000, "the ramp's last rate must be 100 to 200000 "
                      "queries/s")
_step_s = _checked("_step_s", float, lambda v: 0.1 <= v <= 60, "a ramp step lasts 0.1 to 60 s")
_ramp_growth = _checked("_ramp_growth", float, lambda v: 1.01 <= v <= 4, "a ramp's growth per step must be 1.01 to 4")
_sockets = _checked("_sockets", int, lambda v: 1 <= v <= 64, "a load pod has 1 to 64 sockets")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _yes_no(text: str) -> bool:
    if text.strip().lower() not in _TRUE + _FALSE:
        raise ValueError("say true or false")
    return text.strip().lower() in _TRUE


_yes_no.__name__ = "_true_or_false"


def _nodes_spec(text: str) -> str:
    from pytest_k8sdns.kube.placement import parse_nodes_spec

    parse_nodes_spec(text)  # a bad spec is a one-line ConfigError that names the option and the forms
    return text


#: Settings a user may keep in ini files as well as pass on the command line (the latter wins).
OPTIONS: tuple[Option, ...] = (
    Option("glibc_image", str, DEFAULT_GLIBC_IMAGE, "image of the glibc probe pods (needs python3)"),
    Option("musl_image", str, DEFAULT_MUSL_IMAGE, "image of the musl probe pods (needs python3)"),
    Option("nodelocal_image", str, DEFAULT_NODELOCAL_IMAGE, "node-cache image that --k8sdns-kind-nodelocal deploys"),
    Option("p50_ms", _positive_float, 20.0, "bound on the median libc lookup latency, ms", unit="ms", threshold=True),
    Option("p99_ms", _positive_float, 100.0, "bound on the 99th percentile libc lookup latency, ms", unit="ms",
           threshold=True),
    Option("max_error_rate", _positive_float, 0.001, "largest share of failed lookups (0.001 = 0.1 percent)",
           threshold=True),
    Option("max_retry_signatures", int, 0, "most lookups allowed at the libc retry signature (glibc >= 5 s, musl >= 2.5 s)",
           threshold=True),
    Option("external_p99_ms", _positive_float, 200.0, "bound on the p99 libc lookup latency of a name outside the "
           "cluster at the pods' ndots (the search tax included), ms", unit="ms", threshold=True),
    Option("external_samples", _positive_int, 100, "lookups of a name outside the cluster per node, libc and ndots "
           "in the external-latency check"),
    Option("samples", _positive_int, 300, "libc lookups per flavour in the latency check"),
    Option("qps", _positive_float, 50.0, "lookup rate per probe pod in the latency check (0 = as fast as possible)",
           unit="1/s"),
    Option("bursts", _positive_int, 20, "bursts of parallel A+AAAA lookups in the retry-signature check"),
    Option("burst_size", _positive_int, 8, "parallel lookups per burst"),
    Option("nodes", _nodes_spec, "all", "where probe pods run: all schedulable nodes, a number N (a sample that still "
           "covers every zone and node pool), or a label selector"),
    Option("seed", _nonnegative_int, 0, "seed of the --k8sdns-nodes sample: the same seed gives the same nodes"),
    Option("max_qps", _budget, 500.0, "cluster-wide budget of DNS queries per second that all probes together send; "
           "nodes are probed in waves within it", unit="1/s"),
    Option("pod_timeout", _positive_float, 180.0, "seconds to wait for a probe pod to become Ready", unit="s"),
    Option("external_name", str, "", "a name outside the cluster that must resolve (check 8); kind clusters use the test upstream's"),
    Option("profile", str, "default", "default, or certification: every check, larger samples, no skips, results "
           "and HTML always written", PROFILES),
    Option("max_p99_growth", _growth, 1.5, "upgrade gate: largest p99 growth against --k8sdns-baseline (1.5 = +50 percent)"),
    Option("p99_floor_ms", _positive_float, 5.0, "upgrade gate: a p99 below this counts as this in the growth ratio, ms",
           unit="ms"),
    Option("during", str, "", "a shell command that makes a change (an upgrade, a rollout); the monitor probes DNS "
           "from every chosen node while it runs (check 16)"),
    Option("during_timeout_s", _positive_float, 1800.0, "longest a --k8sdns-during command may run", unit="s"),
    Option("settle_s", _positive_float, 10.0, "how long the monitor keeps watching after a change ended", unit="s"),
    Option("monitor_qps", _budget, 10.0, "libc lookups per second of each monitor stream (node and libc), "
           "lowered to fit --k8sdns-max-qps", unit="1/s"),
    Option("change_max_failed", _nonnegative_int, 0, "failed libc lookups allowed during a change, all streams "
           "together (a lookup that could not start counts as failed)",
           threshold=True),
    Option("change_max_gap_s", _positive_float, 5.0, "longest run of failed lookups of one stream during a change",
           unit="s", threshold=True),
    Option("change_p99_ms", _positive_float, 1000.0, "bound on the p99 libc lookup latency during a change", unit="ms",
           threshold=True),
    Option("propagation_objects", _positive_int, 10, "Services, and headless pods, whose names the propagation check "
           "times (check 17)"),
    Option("propagation_p99_s", _positive_float, 10.0, "bound on the p99 time from a Service created, or a headless pod "
           "Ready, to its name answering, per node and libc", unit="s", threshold=True),
    Option("negative_window_s", _positive_float, 30.0, "bound on how long a name asked before its Service existed "
           "keeps answering NXDOMAIN once the Service is there", unit="s", threshold=True),
    Option("socket_recovery_s", _positive_float, 5.0, "longest a long-lived UDP socket (fixed source port) may fail "
           "during a change", unit="s", threshold=True),
    Option("strict_clients", _yes_no, False, "fail the cluster, not only report a finding, when a probe's libc "
           "cannot get a whole answer that DNS must truncate over UDP (musl before 1.2.4 has no TCP fallback)"),
    Option("host_network", _yes_no, False, "also check hostNetwork probe pods with dnsPolicy "
           "ClusterFirstWithHostNet; the run's namespace must admit hostNetwork pods (Pod Security `privileged`). "
           "Always on for kind clusters the plugin creates"),
    Option("pod_records", str, "corefile", "which pod A records (a-b-c-d.<ns>.pod.<domain>) the cluster must "
           "serve: `corefile` as its kubernetes plugin's `pods` option says (none when disabled), or pin the "
           "promise your workloads rely on: insecure (any pod IP), verified (only existing pods'), disabled (none)",
           choices=("corefile", "insecure", "verified", "disabled")),
    Option("capacity", _yes_no, False, "ramp raw queries against the cluster DNS Service until it breaks, per query "
           "class (check 20; opt-in: it loads the DNS it measures)"),
    Option("capacity_max_loss", _share, 0.01, "capacity: largest share of a ramp step's queries lost or wrongly "
           "answered before the knee (0.01 = 1 percent)", threshold=True),
    Option("capacity_p99_ms", _positive_float, 100.0, "capacity: bound on a ramp step's p99 answer latency, ms",
           unit="ms", threshold=True),
    Option("capacity_min_headroom", _positive_float, 2.0, "capacity: smallest knee over the demand (2 = the DNS "
           "takes twice today's load)", threshold=True),
    Option("capacity_demand_qps", _positive_float, 0.0, "capacity: the demand to plan for, queries/s; the measured "
           "rate of coredns_dns_requests_total counts when higher", unit="1/s"),
    Option("capacity_max_rate", _load_rate, 50000.0, "capacity: the ramp's last rate, all load pods together",
           unit="1/s"),
    Option("capacity_step_s", _step_s, 1.0, "capacity: seconds per ramp step", unit="s"),
    Option("capacity_growth", _ramp_growth, 1.1, "capacity: each ramp step's rate over the last's (1.1 = +10 "
           "percent: the knee is found within 10 percent)"),
    Option("capacity_sockets", _sockets, 32, "capacity: UDP sockets (source ports) per load pod; kube-proxy pins "
           "each flow to one replica, so few flows can load the replicas unevenly"),
    Option("capacity_pods", _positive_int, 4, "capacity: probe pods that send the load, spread over the chosen "
           "nodes (both libcs' pods count)"),
)
#: options given as a bare flag (`--k8sdns-strict-clients`), true when given; their ini twin says true or false
FLAG_OPTIONS = ("strict_clients", "host_network", "capacity")
_BY_NAME = {opt.name: opt for opt in OPTIONS}


def default(name: str) -> Any:
    """The default of one option: OPTIONS is the only place it is written."""
    return _BY_NAME[name].default


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, in one frozen object."""

    context: str | None = None
    kubeconfig: str | None = None
    kind: bool = False
    keep_cluster: bool = False
    kind_image: str | None = None
    kind_config: str | None = None
    upstream_image: str | None = None
    require_nodelocal: bool = False
    kind_nodelocal: bool = False
    #: an existing namespace to run in (least privilege, fixtures/rbac.yaml); None: make k8sdns-<run id>
    namespace: str | None = None
    results: str | None = None
    glibc_image: str = default("glibc_image")
    musl_image: str = default("musl_image")
    nodelocal_image: str = default("nodelocal_image")
    p50_ms: float = default("p50_ms")
    p99_ms: float = default("p99_ms")
    max_error_rate: float = default("max_error_rate")
    max_retry_signatures: int = default("max_retry_signatures")
    external_p99_ms: float = default("external_p99_ms")
    external_samples: int = default("external_samples")
    samples: int = default("samples")
    qps: float = default("qps")
    bursts: int = default("bursts")
    burst_size: int = default("burst_size")
    nodes: str = default("nodes")
    seed: int = default("seed")
    max_qps: float = default("max_qps")
    pod_timeout: float = default("pod_timeout")
    external_name: str = default("external_name")
    profile: str = default("profile")
    #: an earlier results file to compare this run with (the upgrade gate)
    baseline: str | None = None
    max_p99_growth: float = default("max_p99_growth")
    p99_floor_ms: float = default("p99_floor_ms")
    #: change the cluster while the monitor watches: the built-in scenarios (check 16)
    disruptive: bool = False
    during: str = default("during")
    during_timeout_s: float = default("during_timeout_s")
    settle_s: float = default("settle_s")
    monitor_qps: float = default("monitor_qps")
    change_max_failed: int = default("change_max_failed")
    change_max_gap_s: float = default("change_max_gap_s")
    change_p99_ms: float = default("change_p99_ms")
    socket_recovery_s: float = default("socket_recovery_s")
    propagation_objects: int = default("propagation_objects")
    propagation_p99_s: float = default("propagation_p99_s")
    negative_window_s: float = default("negative_window_s")
    strict_clients: bool = default("strict_clients")
    pod_records: str = default("pod_records")
    host_network: bool = default("host_network")
    capacity: bool = default("capacity")
    capacity_max_loss: float = default("capacity_max_loss")
    capacity_p99_ms: float = default("capacity_p99_ms")
    capacity_min_headroom: float = default("capacity_min_headroom")
    capacity_demand_qps: float = default("capacity_demand_qps")
    capacity_max_rate: float = default("capacity_max_rate")
    capacity_step_s: float = default("capacity_step_s")
    capacity_growth: float = default("capacity_growth")
    capacity_sockets: int = default("capacity_sockets")
    capacity_pods: int = default("capacity_pods")

    @property
    def active(self) -> bool:
        """True when a cluster was asked for, so the packaged suite runs."""
        return self.kind or self.context is not None

    def thresholds(self) -> dict[str, float]:
        """The bounds the checks judge by, by option name (their unit is in OPTIONS)."""
        return {opt.name: getattr(self, opt.name) for opt in OPTIONS if opt.threshold}

    def image_options(self) -> dict[str, str]:
        """Image -> the option that overrides it, for error messages."""
        return {self.glibc_image: "--k8sdns-glibc-image", self.musl_image: "--k8sdns-musl-image"}


def resolve(cli: dict[str, Any], ini: Callable[[str], Any]) -> Settings:
    """Build Settings: the command line wins over ini, which wins over the default.

    cli maps Settings field names to parsed command-line values (None when not given); ini
    returns an ini value by name ('' when unset). Bad values raise one-line ConfigErrors.
    """
    values: dict[str, Any] = {k: v for k, v in cli.items() if v is not None and k in Settings.__dataclass_fields__}
    for opt in OPTIONS:
        raw = cli.get(opt.name)
        source = opt.flag
        if raw is None:
            raw = ini(opt.ini)
            source = f"ini option {opt.ini}"
            if raw in ("", None, []):
                values[opt.name] = opt.default
                continue
        try:
            values[opt.name] = opt.type(str(raw))
        except ValueError as exc:
            raise ConfigError(f"{source}={raw!r} is not valid ({exc}); expected a {opt.type.__name__.strip('_').replace('_', ' ')} like {opt.default!r}") from None
        if opt.choices and values[opt.name] not in opt.choices:
            raise ConfigError(f"{source}={raw!r} is not a valid {opt.name}; valid values: {', '.join(opt.choices)}")
    if values.get("kind") and values.get("context"):
        raise ConfigError("--k8sdns-kind and --k8sdns-context exclude each other; pick one")
    namespace = values.get("namespace")
    if namespace is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
        raise ConfigError(f"--k8sdns-namespace={namespace!r} is not a namespace name (lowercase letters, digits "
                          f"and '-', at most 63)")
    if namespace is not None and values.get("kind"):
        raise ConfigError("--k8sdns-namespace names a namespace made for the suite on an existing cluster; a kind "
                          "cluster the plugin creates has none: drop it, or use --k8sdns-context")
    if values.get("profile") == "certification":
        for name, least in CERTIFICATION_MINIMUMS.items():
            values[name] = max(values[name], least)
        values["results"] = values.get("results") or CERTIFICATION_RESULTS
    if values.get("kind_nodelocal") and not values.get("kind"):
        raise ConfigError("--k8sdns-kind-nodelocal deploys NodeLocal DNSCache on the kind cluster the plugin creates; "
                          "add --k8sdns-kind")
    return Settings(**values)
