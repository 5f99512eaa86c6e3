"""driftmend: a desired-state controller that heals a running stack."""

__version__ = "0.1.0"
