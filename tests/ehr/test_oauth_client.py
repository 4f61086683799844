"""The OAuth client's configuration checks and the authorize URL it builds."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet

from ehr.errors import ConfigurationError
from ehr.oauth import OAuthClientConfig, begin_authorization
from storage.crypto import Cipher, Secret
from storage.oauth_state import ConsumedState, StateRejected, consume_oauth_state, pkce_challenge

SCOPES = ("patients:read", "calendar:read")


def _config(scopes=SCOPES):
    return OAuthClientConfig(
        base_url="http://127.0.0.1:9/",
        client_id="app-id",
        client_secret=Secret("app-secret-value"),
        redirect_uri="http://127.0.0.1:8501/oauth/callback",
        scopes=scopes,
    )


def test_empty_scopes_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        _config(scopes=())


def test_repr_hides_the_client_secret():
    assert "app-secret-value" not in repr(_config())


def test_authorize_url_matches_the_stored_state(engine):
    cipher = Cipher([Fernet.generate_key()])
    url = begin_authorization(engine, cipher, _config(), user_id=7, session_ref="sess")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "127.0.0.1:9", "/o/authorize/")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["scope"] == "patients:read calendar:read"
    assert query["code_challenge_method"] == "S256"
    assert query["client_id"] == "app-id"

    # Another session cannot use the state (and burns it), so issue a fresh one for the check.
    wrong = consume_oauth_state(engine, cipher, query["state"], 7, "other-session")
    assert isinstance(wrong, StateRejected)

    url = begin_authorization(engine, cipher, _config(), user_id=7, session_ref="sess")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    consumed = consume_oauth_state(engine, cipher, query["state"], 7, "sess")
    assert isinstance(consumed, ConsumedState)
    assert pkce_challenge(consumed.code_verifier) == query["code_challenge"]
    assert consumed.scopes == SCOPES
