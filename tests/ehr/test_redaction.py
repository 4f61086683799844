"""The log redaction filter: no secrets or PHI in log text, and one record is one line."""

import io
import logging

import pytest

from ehr.redaction import QUIET_LOGGERS, REDACTED, RedactingFilter, install_logging, redact

SECRETS = ("abc.def", "xyz", "C0DE", "S7ATE", "Zebulon", "Quixote", "1931", "hunter2", "sh-secret")


@pytest.fixture
def captured():
    """A logger whose handler carries the filter and writes formatted lines to a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, buffer
    logger.removeHandler(handler)
    logger.propagate = True


@pytest.fixture
def clean_root():
    """Restore the root logger and the quiet libraries after a test that installs logging."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    saved_levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    buffer = io.StringIO()
    root.handlers = [logging.StreamHandler(buffer)]
    yield root, buffer
    root.setLevel(saved[0])
    root.handlers = saved[1]
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def", f"Authorization: Bearer {REDACTED}"),
        ("{'Authorization': 'Bearer abc.def'}", f"{{'Authorization': '{REDACTED}'}}"),
        (
            '{"access_token": "xyz", "expires_in": 172800}',
            f'{{"access_token": "{REDACTED}", "expires_in": 172800}}',
        ),
        ("GET /o/cb?code=C0DE&state=S7ATE", f"GET /o/cb?code={REDACTED}&state={REDACTED}"),
        ("first_name=Zebulon Quixote id=7", f"first_name={REDACTED} id=7"),
        ('"date_of_birth": "1931-03-17"', f'"date_of_birth": "{REDACTED}"'),
        ('body={\\"last_name\\": \\"Quixote\\"}', f'body={{\\"last_name\\": \\"{REDACTED}\\"}}'),
        (
            "client_secret=sh-secret password=hunter2",
            f"client_secret={REDACTED} password={REDACTED}",
        ),
        ("refresh_token: xyz", f"refresh_token: {REDACTED}"),
        (
            "patient 42 viewed, status_code=200 username=alice",
            "patient 42 viewed, status_code=200 username=alice",
        ),
        ("evil\nINFO fake\r\x1b[31m", "evil\\nINFO fake\\r\\x1b[31m"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_the_security_example_comes_out_redacted_on_one_line(captured):
    logger, buffer = captured
    logger.info(
        'token call: Authorization: Bearer abc.def body {"access_token": "xyz"} '
        "callback ?code=C0DE&state=S7ATE patient first_name=Zebulon"
    )
    logger.warning("login by %s", "evil\nINFO fake")
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 2
    assert not any(secret in buffer.getvalue() for secret in SECRETS)
    assert lines[1] == "WARNING login by evil\\nINFO fake"


def test_arguments_are_redacted_after_rendering(captured):
    logger, buffer = captured
    logger.debug("payload %s", {"first_name": "Zebulon", "id": 42})
    logger.debug("%(who)s signed in", {"who": "password=hunter2"})
    text = buffer.getvalue()
    assert "Zebulon" not in text
    assert "hunter2" not in text
    assert "'id': 42" in text


def test_tracebacks_are_redacted_but_keep_their_lines(captured):
    logger, buffer = captured
    try:
        raise RuntimeError("refresh failed for refresh_token=xyz")
    except RuntimeError:
        logger.exception("refresh failed")
    text = buffer.getvalue()
    assert "xyz" not in text
    assert "Traceback" in text
    assert text.count("\n") > 2


def test_a_bad_format_string_neither_raises_nor_leaks(captured):
    logger, buffer = captured
    logger.info("two %s %s", "Zebulon")
    text = buffer.getvalue()
    assert "Zebulon" not in text
    assert "arguments withheld" in text


def test_install_logging_filters_root_handlers_and_quiets_http_libraries(clean_root):
    root, buffer = clean_root
    first = install_logging(logging.DEBUG)
    second = install_logging("DEBUG")
    assert first is second
    assert sum(isinstance(f, RedactingFilter) for f in root.handlers[0].filters) == 1
    for name in QUIET_LOGGERS:
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
    logging.getLogger("urllib3.connectionpool").debug("Authorization: Bearer abc.def")
    logging.getLogger("ehr.client").debug("GET /api/patients?first_name=Zebulon&page=2 status=200")
    text = buffer.getvalue()
    assert "abc.def" not in text
    assert "Zebulon" not in text
    assert text == f"GET /api/patients?first_name={REDACTED}&page=2 status=200\n"


def test_redaction_is_idempotent_across_handlers(captured):
    logger, buffer = captured
    second = io.StringIO()
    extra = logging.StreamHandler(second)
    extra.addFilter(RedactingFilter())
    logger.addHandler(extra)
    try:
        logger.info("first_name=Zebulon")
    finally:
        logger.removeHandler(extra)
    assert buffer.getvalue() == f"INFO first_name={REDACTED}\n"
    assert second.getvalue() == f"first_name={REDACTED}\n"
    assert redact(redact('name: Zebulon, "email": "z@x"')) == redact(
        'name: Zebulon, "email": "z@x"'
    )
