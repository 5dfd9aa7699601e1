"""Who is acting: every selector and service takes an :class:`Actor`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ActorKind(StrEnum):
    STAFF = "staff"
    CUSTOMER = "customer"
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    user_id: int | None = None
    username: str = "system"
    organisation_id: int | None = None
    customer_id: int | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    request_id: str | None = None

    @property
    def is_system(self) -> bool:
        return self.kind is ActorKind.SYSTEM

    @property
    def organisation_pk(self) -> int:
        """The actor's organisation id where the code path guarantees one (staff, customer users)."""
        if self.organisation_id is None:
            raise ValueError(f"{self.username} belongs to no organisation")
        return self.organisation_id

    @property
    def customer_pk(self) -> int:
        if self.customer_id is None:
            raise ValueError(f"{self.username} belongs to no customer")
        return self.customer_id

    @property
    def user_pk(self) -> int:
        if self.user_id is None:
            raise ValueError(f"{self.username} is not a user")
        return self.user_id

    @classmethod
    def system(cls, reason: str = "system", request_id: str | None = None) -> Actor:
        return cls(kind=ActorKind.SYSTEM, username=reason, request_id=request_id)
