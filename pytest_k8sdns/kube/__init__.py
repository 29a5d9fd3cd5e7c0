"""The one Kubernetes access layer: the API handle, waits, patch-and-restore, pods, RBAC, and kind."""
