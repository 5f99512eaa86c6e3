"""The dashboard: FastAPI JSON API and pages over the store, plus ``/metrics``."""
