"""`python -m storage` as an operator or script would run it: a real subprocess, both databases."""

import csv
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple 9"


def _env(tmp_path, db_url, token_keys):
    return {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": db_url,
        "DATA_DIR": str(tmp_path / "data"),
        "TOKEN_KEYS": token_keys,
        "AUDIT_HMAC_KEY": "cli-test-audit-key-0123456789abcdef",
    }


def _run(env, *args, stdin=""):
    return subprocess.run(
        [sys.executable, "-m", "storage", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )


def test_operator_workflow(tmp_path, db_url):
    old_key = Fernet.generate_key().decode()
    env = _env(tmp_path, db_url, old_key)
    assert _run(env, "init-db").returncode == 0

    made = _run(
        env, "create-user", "--username", "Admin1", "--role", "admin", stdin=PASSWORD + "\n"
    )
    assert made.returncode == 0, made.stderr
    assert PASSWORD not in made.stdout + made.stderr
    second = _run(
        env, "create-user", "--username", "fd1", "--role", "front_desk", stdin=PASSWORD + "\n"
    )
    assert second.returncode == 2
    assert "--actor" in second.stderr
    third = _run(
        env,
        "create-user",
        "--username",
        "fd1",
        "--role",
        "front_desk",
        "--actor",
        "admin1",
        stdin=PASSWORD + "\n",
    )
    assert third.returncode == 0, third.stderr
    weak = _run(
        env,
        "create-user",
        "--username",
        "x2",
        "--role",
        "billing",
        "--actor",
        "admin1",
        stdin="password\n",
    )
    assert weak.returncode == 2
    assert "Traceback" not in weak.stderr

    # rotate-keys: afterwards only the new key is configured and every token still decrypts
    from datetime import UTC, datetime

    from storage import tokens
    from storage.crypto import Cipher, Secret
    from storage.database import make_engine

    engine = make_engine(db_url)
    saved = tokens.save_connection_tokens(
        engine,
        Cipher([old_key.encode()]),
        tokens.TokenGrant(
            access_token=Secret("AT-cli-rotate-1"),
            refresh_token=Secret("RT-cli-rotate-2"),
            token_type="Bearer",
            scopes=("patients:read",),
            expires_at=None,
            obtained_at=datetime.now(UTC),
        ),
        tokens.ConnectionProfile(vendor="drchrono", base_url="https://x.test", requested_scopes=()),
    )
    new_key = Fernet.generate_key().decode()
    rotated = _run({**env, "TOKEN_KEYS": f"{new_key},{old_key}"}, "rotate-keys")
    assert rotated.returncode == 0, rotated.stderr
    loaded = tokens.load_tokens(engine, Cipher([new_key.encode()]), saved.connection_id)
    assert isinstance(loaded, tokens.TokenSet)
    assert loaded.access_token.reveal() == "AT-cli-rotate-1"
    env["TOKEN_KEYS"] = new_key

    verified = _run(env, "audit-verify")
    assert verified.returncode == 0, verified.stderr
    assert "intact" in verified.stdout

    out = tmp_path / "audit.csv"
    exported = _run(
        env, "audit-export", "--since", "2000-01-01", "--until", "2100-01-01", "--out", str(out)
    )
    assert exported.returncode == 0, exported.stderr
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["action"] for r in rows} >= {"PRIVILEGE_CHANGE", "KEY_ROTATION", "AUDIT_VERIFY"}

    # damage: with the triggers dropped, edit one row -> non-zero exit naming the seq
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER IF EXISTS audit_no_update"))
        else:
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        conn.execute(text("UPDATE audit_event SET username = 'mallory' WHERE seq = 2"))
    engine.dispose()
    damaged = _run(env, "audit-verify")
    assert damaged.returncode == 1
    assert "first bad seq 2" in damaged.stderr
    assert "edited" in damaged.stderr


def test_bad_arguments_give_one_line_and_non_zero(tmp_path):
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", Fernet.generate_key().decode())
    for args in (
        ("no-such-command",),
        ("audit-export", "--since", "yesterday", "--until", "2026-01-01", "--out", "x.csv"),
        ("create-user", "--username", "a", "--role", "superuser"),
        (
            "audit-export",
            "--since",
            "2026-02-01",
            "--until",
            "2026-01-01",
            "--out",
            str(tmp_path / "x.csv"),
        ),
    ):
        result = _run(env, *args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 3
