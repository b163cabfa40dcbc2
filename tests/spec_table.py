"""The status table of docs/PRODUCT.md, written out independently of services.domain so tests can
check the code against the contract rather than against itself."""

from __future__ import annotations

STATUSES = ("new", "approved", "cancelled", "included")
ROLES = ("director", "listener", "staff")
ACTIONS = ("approve", "cancel", "include", "comment")

# (role, action) -> {from status: to status}; the role acts within its scope.
ALLOWED: dict[tuple[str, str], dict[str, str]] = {
    ("director", "approve"): {"new": "approved"},
    ("director", "cancel"): {"new": "cancelled"},
    ("listener", "cancel"): {"new": "cancelled", "approved": "cancelled"},
    ("staff", "include"): {"approved": "included"},
    ("staff", "cancel"): {"new": "cancelled", "approved": "cancelled"},
    ("director", "comment"): {s: s for s in STATUSES},
    ("listener", "comment"): {s: s for s in STATUSES},
    ("staff", "comment"): {s: s for s in STATUSES},
}

LABELS = {
    "new": "Не обработана",
    "approved": "Подтверждена руководителем ОО",
    "cancelled": "Отменена",
    "included": "Включен в группу",
}
