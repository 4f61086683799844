"""The EHR OAuth client: app configuration and the start of the authorization-code flow.

The authorize URL carries an explicit scope, a one-time state and an S256 PKCE challenge, all
taken from the stored state row (storage/oauth_state.py) so the callback can verify them later.
Secrets (client secret, state, verifier) are never logged or put in exception text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy import Engine

from ehr.errors import ConfigurationError
from storage.crypto import Cipher, Secret
from storage.oauth_state import create_oauth_state

__all__ = ["AUTHORIZE_PATH", "OAuthClientConfig", "begin_authorization"]

# DrChrono's authorization endpoint, relative to the configured base URL.
AUTHORIZE_PATH = "/o/authorize/"


@dataclass(frozen=True)
class OAuthClientConfig:
    """The registered OAuth application: where to send users and which scopes to ask for."""

    base_url: str
    client_id: str
    client_secret: Secret = field(repr=False)
    redirect_uri: str
    scopes: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.scopes:
            raise ConfigurationError(details={"setting": "scopes"})
        if not self.base_url or not self.client_id or not self.redirect_uri:
            raise ConfigurationError(details={"setting": "oauth_client"})


def begin_authorization(
    engine: Engine,
    cipher: Cipher,
    config: OAuthClientConfig,
    *,
    user_id: int,
    session_ref: str,
    now: datetime | None = None,
) -> str:
    """Store a new state row for ``user_id``/``session_ref`` and return the authorize URL.

    The URL asks for the configured scopes explicitly and carries the state and the S256 code
    challenge of the stored PKCE verifier; the raw state leaves this function only inside the URL.
    """
    issued = create_oauth_state(
        engine,
        cipher,
        user_id=user_id,
        session_ref=session_ref,
        redirect_uri=config.redirect_uri,
        scopes=config.scopes,
        now=now,
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": config.client_id,
            "redirect_uri": config.redirect_uri,
            "scope": " ".join(config.scopes),
            "state": issued.state.reveal(),
            "code_challenge": issued.code_challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{config.base_url.rstrip('/')}{AUTHORIZE_PATH}?{query}"
