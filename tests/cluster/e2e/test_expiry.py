"""tests/e2e/test_expiry.py on the cluster: expiry within 2 s exactly once, with one instance
and with two."""

from tests.e2e.test_expiry import (
    second_app,
    test_reservation_expires_within_2s_exactly_once,
    test_two_instances_expire_each_reservation_once,
)

__all__ = [
    "second_app",
    "test_reservation_expires_within_2s_exactly_once",
    "test_two_instances_expire_each_reservation_once",
]
