"""Cipher (MultiFernet) and Secret: round trips, failures without leaks, rotation (TK-01)."""

import logging
import pickle
from dataclasses import dataclass, field

import pytest
from cryptography.fernet import Fernet

from storage.crypto import Cipher, DecryptionError, Secret
from storage.settings import load_settings

PLAIN = "AT-ZZZ-plain-123"


@pytest.fixture
def old_key():
    return Fernet.generate_key()


@pytest.fixture
def new_key():
    return Fernet.generate_key()


def _flip(ciphertext: str, position: int) -> str:
    chars = list(ciphertext)
    chars[position] = "A" if chars[position] != "A" else "B"
    return "".join(chars)


def test_text_round_trip_is_randomised_and_opaque(old_key):
    cipher = Cipher([old_key])
    first, second = cipher.encrypt(PLAIN), cipher.encrypt(PLAIN)
    assert first != second  # fresh IV each time
    assert PLAIN not in first
    assert cipher.decrypt(first) == PLAIN
    assert cipher.decrypt_secret(second).reveal() == PLAIN
    assert cipher.encrypt(Secret(PLAIN)) != first
    assert cipher.decrypt(cipher.encrypt(Secret(PLAIN))) == PLAIN


def test_bytes_round_trip(old_key):
    cipher = Cipher([old_key])
    payload = bytes(range(256)) * 40
    token = cipher.encrypt_bytes(payload)
    assert cipher.decrypt_bytes(token) == payload
    assert Cipher([Fernet.generate_key(), old_key]).decrypt_bytes(token) == payload


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda c: _flip(c, len(c) // 2), id="one-byte-flipped"),
        pytest.param(lambda c: c[: len(c) // 2], id="truncated"),
        pytest.param(lambda c: "", id="empty"),
        pytest.param(lambda c: "not base64 ✗", id="garbage"),
    ],
)
def test_damaged_ciphertext_raises_decryption_error_without_leaking(old_key, damage):
    cipher = Cipher([old_key])
    bad = damage(cipher.encrypt(PLAIN))
    with pytest.raises(DecryptionError) as info:
        cipher.decrypt(bad)
    message = str(info.value)
    assert PLAIN not in message
    assert old_key.decode() not in message
    assert (bad not in message) or not bad
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_wrong_key_raises_decryption_error(old_key, new_key):
    ciphertext = Cipher([old_key]).encrypt(PLAIN)
    with pytest.raises(DecryptionError):
        Cipher([new_key]).decrypt(ciphertext)
    with pytest.raises(DecryptionError):
        Cipher([new_key]).rotate(ciphertext)
    with pytest.raises(DecryptionError):
        Cipher([new_key]).decrypt_bytes(ciphertext.encode())


def test_binary_plaintext_read_as_text_is_a_decryption_error(old_key):
    cipher = Cipher([old_key])
    token = cipher.encrypt_bytes(b"\xff\xfe\x00binary").decode()
    with pytest.raises(DecryptionError):
        cipher.decrypt(token)


def test_rotation_moves_ciphertext_to_the_first_key(old_key, new_key):
    old_ciphertext = Cipher([old_key]).encrypt(PLAIN)
    both = Cipher([new_key, old_key])
    assert both.decrypt(old_ciphertext) == PLAIN  # old key still reads during rotation
    rotated = both.rotate(old_ciphertext)
    assert Cipher([new_key]).decrypt(rotated) == PLAIN
    with pytest.raises(DecryptionError):
        Cipher([old_key]).decrypt(rotated)
    assert (
        Cipher([new_key]).decrypt_bytes(both.rotate_bytes(old_ciphertext.encode()))
        == b"AT-ZZZ-plain-123"
    )


def test_cipher_hides_keys_and_refuses_bad_keys(old_key):
    assert old_key.decode() not in repr(Cipher([old_key]))
    with pytest.raises(ValueError, match="not a Fernet key") as info:
        Cipher([b"short-secret-value"])
    assert "short-secret-value" not in str(info.value)
    with pytest.raises(ValueError, match="at least one key"):
        Cipher([])


def test_cipher_from_settings_encrypts_with_the_first_key(tmp_path, old_key, new_key):
    settings = load_settings(
        {
            "TOKEN_KEYS": f"{new_key.decode()},{old_key.decode()}",
            "AUDIT_HMAC_KEY": "k" * 40,
        },
        root=tmp_path,
    )
    ciphertext = Cipher.from_settings(settings).encrypt(PLAIN)
    assert Cipher([new_key]).decrypt(ciphertext) == PLAIN


@dataclass(frozen=True)
class _Holder:
    token: Secret
    other: str = field(default="visible")


def test_secret_never_shows_its_value(caplog):
    secret = Secret(PLAIN)
    shown = [
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret!r}",
        f"{secret:>30}",
        "%s" % secret,  # noqa: UP031  the old formatting paths must mask too
        "{}".format(secret),  # noqa: UP032
        repr(_Holder(secret)),
        repr({"t": secret}),
        str([secret]),
        str(ValueError("bad token", secret)),
    ]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test.secret").info("token is %s / %r", secret, secret)
    shown.append(caplog.text)
    for text in shown:
        assert PLAIN not in text, text
    assert "visible" in repr(_Holder(secret))
    assert secret.reveal() == PLAIN


def test_secret_behaviour():
    secret = Secret(PLAIN)
    assert secret == Secret(PLAIN)
    assert secret != Secret("other")
    assert secret != PLAIN  # never equal to a bare string: no accidental comparisons
    assert len(secret) == len(PLAIN)
    assert secret
    assert not Secret("")
    with pytest.raises(TypeError):
        hash(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]
