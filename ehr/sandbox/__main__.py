"""``python -m ehr.sandbox``: run the DrChrono sandbox in the foreground until Ctrl-C.

Prints the base URL, the OAuth application credentials and the demo login. Binds loopback
unless ``--allow-remote`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from ehr.sandbox.clinic import ClinicConfig
from ehr.sandbox.limits import DEFAULT_PER_HOUR
from ehr.sandbox.server import DEFAULT_REDIRECT_URI, SandboxConfig, SandboxServer

# Port used when none is given: close to Streamlit's 8501 and easy to remember.
DEFAULT_PORT = 8800


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, with the defaults the demo uses."""
    defaults = ClinicConfig()
    parser = argparse.ArgumentParser(prog="python -m ehr.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--patients", type=int, default=defaults.patients)
    parser.add_argument(
        "--months", type=int, default=defaults.months_back, help="months of history"
    )
    parser.add_argument("--rate-limit-per-hour", type=int, default=DEFAULT_PER_HOUR, help="0 = off")
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--redirect-uri", action="append", help="repeat for several")
    parser.add_argument("--enable-fault-admin", action="store_true")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback host")
    args = parser.parse_args(argv)
    if bool(args.client_id) != bool(args.client_secret):
        parser.error("--client-id and --client-secret go together")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Start the sandbox and serve until interrupted."""
    args = parse_args(argv)
    config = SandboxConfig(
        clinic=ClinicConfig(seed=args.seed, patients=args.patients, months_back=args.months),
        host=args.host,
        port=args.port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=tuple(args.redirect_uri or (DEFAULT_REDIRECT_URI,)),
        rate_limit_per_hour=args.rate_limit_per_hour,
        faults_admin_enabled=args.enable_fault_admin,
        allow_remote=args.allow_remote,
    )
    try:
        server = SandboxServer(config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server.bind()  # bind first so the printed URL is the real one
    sandbox = server.sandbox
    lines = [
        f"DrChrono sandbox at {server.base_url}",
        f"  client_id:     {sandbox.client_id}",
        f"  client_secret: {sandbox.client_secret}",
        f"  redirect_uris: {', '.join(config.redirect_uris)}",
        f"  demo login:    {config.username} / {config.password}",
    ]
    if config.faults_admin_enabled:
        lines.append(f"  admin key:     {sandbox.admin_key}  (header X-Sandbox-Admin-Key)")
    lines.append("Ctrl-C stops it.")
    print("\n".join(lines), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
