"""The plugin's exceptions. Each message is one line that names the object and the fix."""

from __future__ import annotations


class K8sDnsError(Exception):
    """Base class: anything the plugin reports to the user as a one-line error."""


class ConfigError(K8sDnsError):
    """A bad option, ini value or input file."""


class ClusterError(K8sDnsError):
    """The cluster cannot be reached or used: unknown context, API down, Forbidden."""


class NotFound(ClusterError):
    """The API answered 404: the object (or its namespace) does not exist. Callers to whom absence
    is an answer catch this; to anyone else it is a one-line error naming the object."""


class ToolError(K8sDnsError):
    """An external command (kind, docker) failed or is missing."""


class PodError(K8sDnsError):
    """A probe pod did not start or a probe inside it failed."""


class WaitTimeout(K8sDnsError):
    """A deadline passed; the message says what was awaited and what was seen last."""
