"""The app's own HTTP routes on a real server: gate, first run, sign-in cookie, health."""

from __future__ import annotations

import re

import pytest
import requests

from tests.e2e.conftest import ADMIN_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TIMEOUT_S = 10.0


def _form(http: requests.Session, url: str) -> str:
    page = http.get(url, timeout=TIMEOUT_S)
    match = re.search(r"name='csrf' value='([^']+)'", page.text)
    assert match, page.text[:300]
    return match.group(1)


def test_health_answers_json_without_secrets(app_url: str) -> None:
    reply = requests.get(f"{app_url}/api/health", timeout=TIMEOUT_S)
    assert reply.status_code == 200
    body = reply.json()
    assert body["database"] == "ok"
    assert body["ehr"] in {"starting", "connected", "not_connected", "needs_reconnect"}
    assert set(body) == {"time", "database", "ehr", "demo_mode", "status"}
    assert reply.headers["cache-control"] == "no-store"


def test_the_whole_sign_in_story_over_http(app_url: str) -> None:
    http = requests.Session()
    # First run: every page load goes to setup until an admin exists.
    first = http.get(
        app_url, headers={"Accept": "text/html"}, allow_redirects=False, timeout=TIMEOUT_S
    )
    assert (first.status_code, first.headers["location"]) == (303, "/session/setup")
    assert first.headers["referrer-policy"] == "no-referrer"

    # A forged form without the CSRF cookie's twin is refused and creates nothing.
    forged = requests.post(
        f"{app_url}/session/setup",
        data={
            "csrf": "x",
            "username": "mallory",
            "password": ADMIN_PASSWORD,
            "confirm": ADMIN_PASSWORD,
        },
        allow_redirects=False,
        timeout=TIMEOUT_S,
    )
    assert forged.status_code == 400

    csrf = _form(http, f"{app_url}/session/setup")
    mismatch = http.post(
        f"{app_url}/session/setup",
        data={"csrf": csrf, "username": "ada", "password": ADMIN_PASSWORD, "confirm": "other"},
        allow_redirects=False,
        timeout=TIMEOUT_S,
    )
    assert mismatch.status_code == 400
    assert "differ" in mismatch.text

    csrf = _form(http, f"{app_url}/session/setup")
    created = http.post(
        f"{app_url}/session/setup",
        data={
            "csrf": csrf,
            "username": "ada",
            "password": ADMIN_PASSWORD,
            "confirm": ADMIN_PASSWORD,
        },
        allow_redirects=False,
        timeout=TIMEOUT_S,
    )
    assert (created.status_code, created.headers["location"]) == (303, "/")
    cookie = created.headers["set-cookie"]
    assert "ehr_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http on loopback; https deployments get Secure
    assert http.get(app_url, headers={"Accept": "text/html"}, timeout=TIMEOUT_S).status_code == 200

    # Setup is closed for good once an account exists.
    again = requests.get(f"{app_url}/session/setup", allow_redirects=False, timeout=TIMEOUT_S)
    assert again.headers["location"] == "/session/sign-in"

    # A wrong password: a generic message, no cookie.
    other = requests.Session()
    csrf = _form(other, f"{app_url}/session/sign-in")
    wrong = other.post(
        f"{app_url}/session/sign-in",
        data={"csrf": csrf, "username": "ada", "password": "wrong password here", "next": "/"},
        allow_redirects=False,
        timeout=TIMEOUT_S,
    )
    assert wrong.status_code == 401
    assert "Wrong username or password." in wrong.text
    assert "ehr_session=" not in wrong.headers.get("set-cookie", "")

    # A post-login next pointing elsewhere ends on the app's home page (OA-03).
    for evil in ("https://evil.example/x", "//evil.example", "/\\evil", "javascript:alert(1)"):
        csrf = _form(other, f"{app_url}/session/sign-in?next={evil}")
        signed = other.post(
            f"{app_url}/session/sign-in",
            data={"csrf": csrf, "username": "ada", "password": ADMIN_PASSWORD, "next": evil},
            allow_redirects=False,
            timeout=TIMEOUT_S,
        )
        assert (signed.status_code, signed.headers["location"]) == (303, "/")


def test_media_and_pages_need_a_session(app_url: str) -> None:
    anonymous = requests.Session()
    media = anonymous.get(f"{app_url}/media/abc.csv", allow_redirects=False, timeout=TIMEOUT_S)
    assert media.status_code in {401, 303}
    page = anonymous.get(
        f"{app_url}/patients",
        headers={"Accept": "text/html"},
        allow_redirects=False,
        timeout=TIMEOUT_S,
    )
    assert page.status_code == 303
    assert page.headers["location"].startswith("/session/")
