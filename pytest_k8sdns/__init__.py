"""pytest-k8sdns: certify a Kubernetes cluster's DNS from inside pods."""

from __future__ import annotations

__version__ = "0.1.0"
