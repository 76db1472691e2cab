"""Domain errors. Each carries the HTTP status and problem type it is reported with."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every error a client can cause; rendered as RFC 9457 problem+json."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.replayed = False  # set when this is the recorded answer to an Idempotency-Key


class ValidationFailed(DomainError):
    """Input that does not meet the contract; ``field`` names the offending field."""

    status = 422
    slug = "validation"
    title = "Validation failed"

    def __init__(self, field: str, message: str, **extra: Any) -> None:
        extra.setdefault("errors", [{"field": field, "message": message}])
        super().__init__(f"{field}: {message}", field=field, **extra)
        self.field = field


class Unauthorized(DomainError):
    status = 401
    slug = "unauthorized"
    title = "Missing or unknown API key"


class Forbidden(DomainError):
    status = 403
    slug = "forbidden"
    title = "This API key may not do that"


class NotFound(DomainError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class Shortage(Conflict):
    """A reservation could not be held; ``shortages`` lists what is missing per sku."""

    slug = "insufficient-stock"
    title = "Insufficient stock"


class NotActive(Conflict):
    """Commit, release or extend of a reservation that is no longer active."""

    slug = "reservation-not-active"
    title = "Reservation is not active"


class SupplyFinished(Conflict):
    """Receive, reschedule or cancel of a supply that is received or cancelled."""

    slug = "supply-finished"
    title = "Supply is finished"


class TransferConflict(Conflict):
    """Receive or cancel of a transfer whose status does not allow it (finished; or a cancel
    after units were received): ``transfer_status`` says which."""

    slug = "transfer-status"
    title = "Transfer status does not allow this"


class PreconditionFailed(DomainError):
    status = 412
    slug = "version-mismatch"
    title = "Version does not match If-Match"


class IdempotencyMismatch(DomainError):
    status = 422
    slug = "idempotency-key-reused"
    title = "Idempotency-Key reused with a different request"


class PayloadTooLarge(DomainError):
    status = 413
    slug = "payload-too-large"
    title = "Request body too large"


class Unavailable(DomainError):
    status = 503
    slug = "unavailable"
    title = "Service unavailable"


class NotReplicated(Unavailable):
    """A write applied on the Redis primary that fewer than OMNISTOCK_REDIS_WAIT_REPLICAS replicas
    confirmed in time: not acknowledged (a failover could still lose it); a retry with the same
    Idempotency-Key answers the recorded outcome once the replicas have it."""

    slug = "not-replicated"
    title = "Write not confirmed by replicas"


class RateLimited(DomainError):
    """An API key over its rate limit (api/ratelimit.py answers it, with its headers)."""

    status = 429
    slug = "too-many-requests"
    title = "Too many requests"
