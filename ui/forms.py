"""The few plain-HTML pages served by our own routes: sign-in, first-run setup, messages.

Streamlit cannot set cookies, so signing in happens on a small server-rendered form whose
POST sets the HttpOnly session cookie (DESIGN.md section 4). Every value placed in the markup is
escaped; the pages carry a strict Content-Security-Policy and are never cached.
"""

from __future__ import annotations

import html
from typing import Final

from starlette.responses import HTMLResponse

__all__ = ["SECURITY_HEADERS", "message_page", "setup_page", "sign_in_page"]

# Headers for every response of our own routes (SECURITY.md SS-03, OA-04).
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_STYLE: Final = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f7f9;color:#1d2b36;
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:32px 36px;
width:100%;max-width:380px}
h1{font-size:1.35rem;margin:0 0 4px}.sub{color:#5b6b78;margin:0 0 22px;font-size:.95rem}
label{display:block;font-weight:600;font-size:.9rem;margin:14px 0 6px}
input{width:100%;box-sizing:border-box;padding:10px 12px;border:1px solid #c4d0d9;border-radius:8px;
font-size:1rem}input:focus{outline:2px solid #1f6f8b;border-color:#1f6f8b}
button{margin-top:22px;width:100%;padding:11px;border:0;border-radius:8px;background:#1f6f8b;
color:#fff;font-size:1rem;font-weight:600;cursor:pointer}button:hover{background:#185a71}
.error{background:#fdecea;color:#8a1c13;border-radius:8px;padding:10px 12px;margin:0 0 8px}
.notice{background:#eaf4f8;color:#174a5c;border-radius:8px;padding:10px 12px;margin:0 0 8px}
.hint{color:#5b6b78;font-size:.85rem;margin-top:6px}a{color:#1f6f8b}
"""


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    document = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)} · Clinic EHR Dashboard</title><style>{_STYLE}</style>"
        f"</head><body><main>{body}</main></body></html>"
    )
    return HTMLResponse(document, status_code=status_code, headers=SECURITY_HEADERS)


def _banner(error: str | None, notice: str | None) -> str:
    parts = []
    if error:
        parts.append(f"<p class='error' role='alert'>{html.escape(error)}</p>")
    if notice:
        parts.append(f"<p class='notice'>{html.escape(notice)}</p>")
    return "".join(parts)


def sign_in_page(
    csrf: str,
    next_path: str,
    *,
    error: str | None = None,
    notice: str | None = None,
    username: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    """The sign-in form; ``username`` is echoed back (escaped) after a failed attempt."""
    body = (
        "<h1>Clinic EHR Dashboard</h1><p class='sub'>Sign in to continue.</p>"
        f"{_banner(error, notice)}"
        "<form method='post' action='/session/sign-in'>"
        f"<input type='hidden' name='csrf' value='{html.escape(csrf)}'>"
        f"<input type='hidden' name='next' value='{html.escape(next_path)}'>"
        "<label for='username'>Username</label>"
        f"<input id='username' name='username' autocomplete='username' required maxlength='256' "
        f"value='{html.escape(username)}' autofocus>"
        "<label for='password'>Password</label>"
        "<input id='password' name='password' type='password' autocomplete='current-password' "
        "required maxlength='1024'>"
        "<button type='submit'>Sign in</button></form>"
    )
    return _page("Sign in", body, status_code)


def setup_page(
    csrf: str, *, error: str | None = None, username: str = "", status_code: int = 200
) -> HTMLResponse:
    """First run: create the administrator account (offered only while no account exists)."""
    body = (
        "<h1>Welcome</h1><p class='sub'>Create the first administrator account. "
        "It can then add the rest of the team in Settings.</p>"
        f"{_banner(error, None)}"
        "<form method='post' action='/session/setup'>"
        f"<input type='hidden' name='csrf' value='{html.escape(csrf)}'>"
        "<label for='username'>Username</label>"
        f"<input id='username' name='username' autocomplete='username' required maxlength='64' "
        f"value='{html.escape(username)}' autofocus>"
        "<label for='password'>Password</label>"
        "<input id='password' name='password' type='password' autocomplete='new-password' "
        "required minlength='12' maxlength='1024'>"
        "<p class='hint'>At least 12 characters; common passwords are refused.</p>"
        "<label for='confirm'>Repeat the password</label>"
        "<input id='confirm' name='confirm' type='password' autocomplete='new-password' "
        "required maxlength='1024'>"
        "<button type='submit'>Create administrator</button></form>"
    )
    return _page("First run", body, status_code)


def message_page(
    title: str,
    message: str,
    *,
    link: str = "/",
    link_text: str = "Back to the dashboard",
    status_code: int = 200,
) -> HTMLResponse:
    """A plain message with one link onward (e.g. a refused EHR connection)."""
    body = (
        f"<h1>{html.escape(title)}</h1><p class='sub'>{html.escape(message)}</p>"
        f"<p><a href='{html.escape(link)}'>{html.escape(link_text)}</a></p>"
    )
    return _page(title, body, status_code)
