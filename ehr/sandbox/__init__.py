"""The embedded DrChrono sandbox: OAuth2 provider, REST API v4 imitation and synthetic clinic.

Start one with ``SandboxServer(SandboxConfig(...)).start()`` (or ``python -m ehr.sandbox``) and
talk to ``server.base_url`` over HTTP exactly as to ``https://app.drchrono.com``.
"""

from ehr.sandbox.faults import FaultSettings, LogEntry, RequestLog
from ehr.sandbox.server import Sandbox, SandboxConfig, SandboxServer, build_app, build_sandbox

__all__ = [
    "FaultSettings",
    "LogEntry",
    "RequestLog",
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "build_app",
    "build_sandbox",
]
