"""Kubeconfig and context handling, API access, and one-line errors for API failures."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import urllib3
import yaml
from kubernetes import client, config, utils
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from pytest_k8sdns.errors import ClusterError, ConfigError, NotFound

#: Label on everything the plugin creates, so leftovers can be found and removed.
MANAGED_BY = {"app.kubernetes.io/managed-by": "pytest-k8sdns"}
#: The --k8sdns-context value that means "the pod's ServiceAccount", not a kubeconfig context.
IN_CLUSTER = "in-cluster"
#: Where Kubernetes mounts a pod's ServiceAccount token, CA and namespace.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclasses.dataclass(frozen=True)
class NodeFacts:
    """What the report says about one node."""

    name: str
    internal_ip: str
    ready: bool
    kernel: str
    os_image: str
    container_runtime: str
    kubelet: str
    # left out of the hash, so NodeFacts stays hashable with a dict in it
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)
    #: each "key=value:Effect" or "key:Effect"
    taints: tuple[str, ...] = ()
    #: spec.unschedulable: the node is cordoned
    unschedulable: bool = False


def default_kubeconfig() -> str:
    """The first file of $KUBECONFIG, else ~/.kube/config (kubectl's rule for a single file)."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return os.path.expanduser(first or "~/.kube/config")


@contextlib.contextmanager
def api_errors(verb: str, resource: str, namespace: str | None, server: str, name: str | None = None) -> Iterator[None]:
    """Turn API failures into one-line ClusterErrors that name the request and the fix; a 404 is
    NotFound, which callers to whom absence is an answer catch."""
    __tracebackhide__ = True
    where = f"in namespace {namespace}" if namespace else "cluster-wide"
    try:
        yield
    except ApiException as exc:
        if exc.status == 0 and " -+-+- " in str(exc.reason):
            # a refused websocket upgrade (pod exec): "Handshake status 403 Forbidden -+-+- headers -+-+- body"
            first, *_, body = str(exc.reason).split(" -+-+- ")
            code = first.split()[2] if first.startswith("Handshake status ") and len(first.split()) > 2 else "0"
            exc = ApiException(status=int(code) if code.isdigit() else 0, reason=first)
            exc.body = body
        detail = status_message(exc)
        if exc.status == 403 and detail and " cannot " not in detail:
            # refused by admission (Pod Security, quota, a webhook), not by RBAC: say what the server said
            raise ClusterError(f"the API server at {server} refused to {verb} {resource} {where}: {detail}") from None
        if exc.status == 403:
            # the server names what it refused, which may differ from the call (exec is checked as get)
            said = re.search(r'cannot (\w+) resource "([^"]+)"', detail)
            verb, resource = (said.group(1), said.group(2)) if said else (verb, resource)
            raise ClusterError(
                f"Forbidden: cannot {verb} {resource} {where} on {server}; grant it to this "
                f"identity (fixtures/rbac.yaml lists what the suite needs)"
            ) from None
        if exc.status == 404:
            what = f"{resource} {name}" if name else resource
            raise NotFound(f"{what} not found {where} on {server}: {detail or 'not found'}") from None
        if exc.status == 401:
            raise ClusterError(
                f"Unauthorized at {server}: the kubeconfig's credentials were refused; "
                f"refresh them or pick another --k8sdns-context"
            ) from None
        raise
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ClusterError(
            f"cannot reach the Kubernetes API at {server} ({reason.__class__.__name__}); "
            f"check that the cluster runs and that --k8sdns-context names it"
        ) from None


def status_message(exc: ApiException) -> str:
    """The message of the Status object an API error carries, on one line."""
    try:
        doc = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return ""
    return " ".join(str(doc.get("message", "")).split()) if isinstance(doc, dict) else ""


class Cluster:
    """An API handle on one cluster, from one kubeconfig context."""

    def __init__(self, api_client: client.ApiClient, context: str, kubeconfig: str, *, created: bool) -> None:
        self.api_client = api_client
        self.context = context
        self.kubeconfig = kubeconfig
        #: True when the plugin created this cluster and may change it outside its namespace.
        self.created = created
        self.server: str = api_client.configuration.host
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.discovery = client.VersionApi(api_client)
        self._local = threading.local()
        self._exec_clients: list[client.ApiClient] = []
        #: API requests this handle made, by "verb resource" (an exec counts as "create pods/exec"):
        #: the plugin's own API traffic, which the results file and the fan-out benchmarks report
        self.requests: collections.Counter[str] = collections.Counter()
        self._count_lock = threading.Lock()

    def _count(self, verb: str, resource: str) -> None:
        with self._count_lock:
            self.requests[f"{verb} {resource}"] += 1

    @property
    def exec_api(self) -> client.CoreV1Api:
        """A CoreV1Api for pod exec, one per thread: kubernetes.stream swaps its client's request
        method while a websocket call runs, so exec must never share a client with other calls."""
        api = getattr(self._local, "exec_api", None)
        if api is None:
            api_client = client.ApiClient(self.api_client.configuration)
            self._exec_clients.append(api_client)
            api = client.CoreV1Api(api_client)
            self._local.exec_api = api
        return api

    @classmethod
    def in_cluster(cls) -> Cluster:
        """The cluster this process runs in, as the pod's ServiceAccount (its mounted token, which
        the client rereads when the kubelet rotates it)."""
        token = os.path.join(SERVICE_ACCOUNT_DIR, "token")
        if not os.path.exists(token) or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise ConfigError(f"no service account token at {token} (or no KUBERNETES_SERVICE_HOST); run inside "
                              f"a pod or give --k8sdns-context=NAME of a kubeconfig context")
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise ConfigError(f"the pod's service account in {SERVICE_ACCOUNT_DIR} is unusable: {exc}; "
                              f"mount its token (automountServiceAccountToken: true)") from None
        configuration.retries = 2
        return cls(client.ApiClient(configuration), IN_CLUSTER, "", created=False)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None, context: str | None, *, created: bool = False) -> Cluster:
        """A kubeconfig context; the context `in-cluster` (IN_CLUSTER) is the pod's ServiceAccount."""
        if context == IN_CLUSTER:
            if kubeconfig:
                raise ConfigError(f"--k8sdns-context={IN_CLUSTER} uses the pod's service account, not "
                                  f"--k8sdns-kubeconfig={kubeconfig}; drop one")
            return cls.in_cluster()
        path = os.path.expanduser(kubeconfig) if kubeconfig else default_kubeconfig()
        if not os.path.exists(path):
            raise ConfigError(f"no kubeconfig at {path}; pass --k8sdns-kubeconfig=FILE or set KUBECONFIG")
        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read kubeconfig {path}: {exc.__class__.__name__}; fix the file or pass another") from None
        contexts = doc.get("contexts") or [] if isinstance(doc, dict) else []
        active = {"name": doc.get("current-context")} if isinstance(doc, dict) else None
        names = [str(c.get("name")) for c in contexts if isinstance(c, dict)]
        chosen = context or (active or {}).get("name")
        if not chosen:
            raise ConfigError(f"{path} has no current-context; pass --k8sdns-context, one of: {', '.join(names) or 'none'}")
        if chosen not in names:
            listed = ", ".join(names) or "none"
            raise ConfigError(f"context '{chosen}' is not in {path}; contexts there: {listed}")
        try:
            api_client = config.new_client_from_config(config_file=path, context=chosen)
        except ConfigException as exc:
            raise ConfigError(f"context '{chosen}' in {path} is unusable: {exc}") from None
        api_client.configuration.retries = 2
        return cls(api_client, chosen, path, created=created)

    def call(self, verb: str, resource: str, namespace: str | None, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call an API method, with failures reported as one line naming verb/resource/namespace
        (a 404 raises NotFound, naming the object when the first argument is its name)."""
        __tracebackhide__ = True
        kwargs.setdefault("_request_timeout", 30)
        name = args[0] if args and isinstance(args[0], str) and verb != "list" and args[0] != namespace else None
        self._count(verb, resource)
        with api_errors(verb, resource, namespace, self.server, name):
            return fn(*args, **kwargs)

    def create(self, doc: dict[str, Any]) -> Any:
        """Create one object of a manifest, of any kind the client knows (kubernetes.utils picks the
        API), with failures reported as `call` reports them."""
        __tracebackhide__ = True
        meta = doc.get("metadata") or {}
        namespace = meta.get("namespace")
        # the plural the API uses for the kinds of the plugin's manifests (ConfigMap, Service, DaemonSet)
        resource = f"{str(doc['kind']).lower()}s"
        self._count("create", resource)
        with api_errors("create", resource, namespace, self.server, meta.get("name")):
            try:
                created = utils.create_from_dict(self.api_client, doc, namespace=namespace or "default",
                                                 _request_timeout=30)
            except utils.FailToCreateError as exc:
                raise exc.api_exceptions[0] from None
        return created[0]

    def server_version(self) -> str:
        info = self.call("get", "version", None, self.discovery.get_code)
        return str(info.git_version)

    def nodes(self) -> list[NodeFacts]:
        items = self.call("list", "nodes", None, self.core.list_node).items
        facts = []
        for n in items:
            ip = next((a.address for a in n.status.addresses or [] if a.type == "InternalIP"), "")
            ready = any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            info = n.status.node_info
            spec = n.spec or client.V1NodeSpec()
            taints = tuple(f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}"
                           for t in spec.taints or [])
            facts.append(
                NodeFacts(
                    name=n.metadata.name,
                    internal_ip=ip,
                    ready=ready,
                    kernel=info.kernel_version,
                    os_image=info.os_image,
                    container_runtime=info.container_runtime_version,
                    kubelet=info.kubelet_version,
                    labels=dict(n.metadata.labels or {}),
                    taints=taints,
                    unschedulable=bool(spec.unschedulable),
                )
            )
        return facts

    def close(self) -> None:
        for api_client in [self.api_client, *self._exec_clients]:
            api_client.close()
