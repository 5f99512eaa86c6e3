"""``driftmend operator``: the controller as a Kubernetes operator over the driftmend.dev CRDs.

Stage: the composition root (``runtime``), with kopf's thin handlers (``handlers``) as a spec
source and the admission webhook's TLS (``certs``). docs/ARCHITECTURE.md, "The operator".
"""
