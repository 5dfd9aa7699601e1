"""The API's one pagination: ``?limit=&offset=`` with bounds every database can hold.

An offset beyond what a 64-bit integer (SQLite) or a bigint (PostgreSQL) holds would reach the database
and fail there; it is refused up front as a 422 naming the parameter, like every other bad value.
"""

from __future__ import annotations

from ninja import Field, Schema
from ninja.pagination import LimitOffsetPagination

MAX_LIMIT = 500
MAX_OFFSET = 2**31 - 1


class Pagination(LimitOffsetPagination):
    class Input(Schema):
        limit: int = Field(100, ge=1, le=MAX_LIMIT, description=f"items per page (1–{MAX_LIMIT})")
        offset: int = Field(0, ge=0, le=MAX_OFFSET, description="items to skip")

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_limit=MAX_LIMIT, **kwargs)
