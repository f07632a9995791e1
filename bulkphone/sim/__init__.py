"""The simulated Graph tenant used by `bulkphone demo` and by the tests."""

from .tenant import APP_TOKEN, DROP_AFTER, DROP_BEFORE, Faults, Principal, SimGroup, SimResponse, SimTenant, SimUser
from .transport import SimTransport, serve

__all__ = [
    "APP_TOKEN",
    "DROP_AFTER",
    "DROP_BEFORE",
    "Faults",
    "Principal",
    "SimGroup",
    "SimResponse",
    "SimTenant",
    "SimTransport",
    "SimUser",
    "serve",
]
