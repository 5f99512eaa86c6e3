"""The integer ids in the dashboard's URLs (fixes, parked plans, LLM exchanges, jobs), as one
kind of path parameter: any integer the URL holds, and 404 for one no record can have.

Stage: *outputs* in docs/ARCHITECTURE.md. The store's ids are SQLite's (and PostgreSQL's
``BIGINT``) row ids: 1 to 2**63 - 1. A larger number cannot be bound to a statement at all
(the driver raises), and 0 or a negative one never names a row, so each is answered as a
missing record is, by the same message, before the store is asked. A non-numeric id stays
FastAPI's 422 (an error page for a page, JSON for the API), as any malformed parameter.

Each type is ``Annotated[int, Depends(...)]``: the route declares ``fid: FixId`` and gets
the checked value; the dependency declares the path parameter itself (by its alias), so the
OpenAPI schema still shows ``fid`` as an integer in the path.
"""

# No ``from __future__ import annotations`` here: the dependency's annotation names its path
# parameter from a closure variable, so it must be evaluated where the function is defined
# (FastAPI could not resolve it later from the module's globals).
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from pydantic import BeforeValidator

__all__ = ["MAX_ID", "FixId", "InteractionId", "JobId", "PlanId", "record_id"]

# The largest row id of SQLite's INTEGER and PostgreSQL's BIGINT.
MAX_ID = 2**63 - 1
_MAX_DIGITS = len(str(MAX_ID))


def _clip(value: object) -> object:
    """A string of more digits than any id has, as the first integer past the range: pydantic
    refuses to parse more than 4300 digits (a 422), but such a number is still an integer
    that names no record."""
    if isinstance(value, str):
        digits = value.strip().removeprefix("-").removeprefix("+")
        if digits.isascii() and digits.isdigit() and len(digits) > _MAX_DIGITS:
            return -(MAX_ID + 1) if value.strip().startswith("-") else MAX_ID + 1
    return value


def record_id(param: str, missing: str) -> Callable[[Request, int], int]:
    """A dependency reading the path parameter ``param`` as an id: 404 with ``missing``
    (formatted with ``id``, the id as the URL wrote it) when no record can have it."""

    def in_range(
        request: Request,
        value: Annotated[
            int, BeforeValidator(_clip), Path(alias=param, description="a record's id")
        ],
    ) -> int:
        if not 1 <= value <= MAX_ID:
            raise HTTPException(404, missing.format(id=request.path_params.get(param, value)))
        return value

    in_range.__name__ = f"{param}_in_range"
    return in_range


FixId = Annotated[int, Depends(record_id("fid", "no fix {id}"))]
PlanId = Annotated[int, Depends(record_id("pid", "no pending plan {id}"))]
InteractionId = Annotated[int, Depends(record_id("iid", "no LLM interaction {id}"))]
# Jobs live in memory, not in the store; their ids are bounded the same way all the same.
JobId = Annotated[
    int, Depends(record_id("jid", "no job {id} (jobs are kept in memory, the newest 200)"))
]
