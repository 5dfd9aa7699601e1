"""A local stand-in for Partner Center with fault injection: see :mod:`.server` and :mod:`.faults`."""

from .faults import Fault, FaultPlan, FaultSpecError, parse_spec
from .server import EmulatorConfig, EmulatorServer, RunningEmulator, serve, start_in_thread

__all__ = [
    "EmulatorConfig",
    "EmulatorServer",
    "Fault",
    "FaultPlan",
    "FaultSpecError",
    "RunningEmulator",
    "parse_spec",
    "serve",
    "start_in_thread",
]
