"""Drivers: the only modules that talk to processes, PostgreSQL, Redis (and later Docker, GCP).

Stage: *observe* and *act* in DESIGN.md. Each driver translates its library's errors into
``driftmend.errors`` at the seam.
"""
