"""Talking to a Kubernetes API server: credentials and a small JSON client (httpx2)."""
