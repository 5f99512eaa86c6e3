"""shop: the sample e-commerce app that driftmend heals.

It is the workload of the demo stack, not part of the controller: a small FastAPI service
with products and orders in PostgreSQL, sessions and carts in Redis, its own Prometheus
metrics, one-line logs the controller's log accumulator parses, and fault injectors
(``SHOP_CHAOS=1``) that make it sick on purpose. Run it with ``python -m shop`` from
``sample-app/``.
"""

__version__ = "0.1.0"
