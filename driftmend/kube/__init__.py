"""Talking to the Kubernetes API: status, Events, Leases. docs/ARCHITECTURE.md, "The operator"."""
