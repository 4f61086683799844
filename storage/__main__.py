"""Admin command line: ``python -m storage <command>``.

Commands: ``init-db``, ``create-user``, ``rotate-keys``, ``audit-verify``, ``audit-export``. The
database comes from ``--database-url`` or ``DATABASE_URL`` (else the configured default), keys and
the rest from the environment (this is an edge, like ``ui/wiring.py``). Bad arguments and expected
failures print one line to stderr and exit non-zero, never a traceback. Every command that changes
or reads protected data writes an audit row attributed to the operator (``cli``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from storage import audit, audit_chain, audit_report, identity, tokens
from storage.crypto import Cipher
from storage.database import make_engine, upgrade_schema
from storage.settings import Settings, SettingsError, load_settings

_ROOT = Path(__file__).resolve().parents[1]
_OPERATOR = "cli"
# Exit codes: 0 success, 1 the check failed (audit damaged), 2 bad usage or configuration.
_EXIT_DAMAGED = 1
_EXIT_USAGE = 2


class CommandError(Exception):
    """An expected failure reported as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(_EXIT_USAGE, f"error: {message}\n")


def _parse_day(value: str) -> datetime:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value[:20]!r}") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m storage", description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="overrides DATABASE_URL")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("init-db", help="create or upgrade the schema")
    create = sub.add_parser("create-user", help="create a user; password from standard input")
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=[r.value for r in identity.Role])
    create.add_argument(
        "--actor", help="username of the admin on whose behalf (required once any user exists)"
    )
    sub.add_parser("rotate-keys", help="re-encrypt stored secrets under the first TOKEN_KEYS key")
    sub.add_parser("audit-verify", help="check the audit chain")
    export = sub.add_parser("audit-export", help="export audit rows in [since, until) as CSV")
    export.add_argument("--since", required=True, type=_parse_day)
    export.add_argument("--until", required=True, type=_parse_day)
    export.add_argument("--out", required=True, type=Path)
    return parser


def _append(engine: Engine, settings: Settings, record: audit.AuditRecord) -> None:
    event = audit.append(engine, settings.audit_hmac_key, record)
    audit_chain.record_anchor_if_due(audit_chain.default_anchor_path(settings.data_dir), event)


def _record(
    engine: Engine, settings: Settings, action: audit.AuditAction, **details: object
) -> None:
    _append(
        engine,
        settings,
        audit.AuditRecord(action=action, username=_OPERATOR, role="operator", details=details),
    )


def _identity_hook(engine: Engine, settings: Settings) -> identity.EventHook:
    def hook(event: identity.IdentityEvent) -> None:
        details: dict[str, object] = {}
        if isinstance(event, identity.PrivilegeChanged):
            details = {"field": str(event.field), "old": event.old, "new": event.new}
        _append(
            engine,
            settings,
            audit.AuditRecord(
                action=audit.AuditAction(event.audit_action),
                username=_OPERATOR,
                role="operator",
                resource_type="app_user",
                resource_id=getattr(event, "target_id", None),
                details=details,
            ),
        )

    return hook


def _create_user(engine: Engine, settings: Settings, args: argparse.Namespace) -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    actor_id: int | None = None
    if identity.count_users(engine) > 0:
        if not args.actor:
            raise CommandError("users exist already: name an admin with --actor")
        actor = identity.find_user(engine, args.actor)
        if actor is None:
            raise CommandError("--actor does not name an existing user")
        actor_id = actor.id
    user = identity.create_user(
        engine,
        args.username,
        password,
        args.role,
        actor_id,
        now=datetime.now(UTC),
        on_event=_identity_hook(engine, settings),
    )
    return f"created user {user.username} (id {user.id}, role {user.role})"


def _run(args: argparse.Namespace) -> tuple[int, str]:
    env = dict(os.environ)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    settings = load_settings(env, {}, root=_ROOT)
    engine = make_engine(settings.database_url)
    try:
        upgrade_schema(engine)
        key = settings.audit_hmac_key
        if args.command == "init-db":
            return 0, "schema is up to date"
        if args.command == "create-user":
            return 0, _create_user(engine, settings, args)
        if args.command == "rotate-keys":
            count = tokens.rotate_keys(engine, Cipher.from_settings(settings))
            _record(engine, settings, audit.AuditAction.KEY_ROTATION, reencrypted=count)
            return 0, f"re-encrypted {count} stored secrets under the first key"
        if args.command == "audit-verify":
            anchor_path = audit_chain.default_anchor_path(settings.data_dir)
            result = audit_chain.verify(
                engine, key, anchor=audit_chain.read_latest_anchor(anchor_path)
            )
            _record(engine, settings, audit.AuditAction.AUDIT_VERIFY, ok=result.ok)
            if result.ok:
                audit_chain.write_anchor(anchor_path, audit_chain.anchor(engine, key))
                return 0, f"audit log intact: {result.checked} rows checked"
            return _EXIT_DAMAGED, (
                f"audit log damaged: first bad seq {result.first_bad_seq} ({result.kind}): "
                f"{result.message}"
            )
        if args.command == "audit-export":
            if args.until <= args.since:
                raise CommandError("--until must be after --since")
            rows = audit_report.export_csv(engine, args.out, args.since, args.until)
            _record(engine, settings, audit.AuditAction.EXPORT, resource="audit_log", rows=rows)
            return 0, f"exported {rows} audit rows to {args.out}"
        raise CommandError(f"unknown command {args.command}")
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    args = _build_parser().parse_args(argv)
    try:
        code, message = _run(args)
    except (CommandError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    except (identity.IdentityError, identity.PasswordPolicyError) as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return _EXIT_USAGE
    except (audit.AuditWriteError, audit_chain.AuditChainError, OSError) as exc:
        print(f"error: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
        return _EXIT_USAGE
    print(message, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
