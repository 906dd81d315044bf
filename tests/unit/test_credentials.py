import pytest

from core import credentials
from ingest.token_cache import TokenCache

pytestmark = pytest.mark.unit


def test_tokens_are_256_bit_random_and_distinct():
    a, b = credentials.new_token(), credentials.new_token()
    assert a != b
    assert len(a.split("_", 1)[1]) >= 43  # 32 bytes in URL-safe base64


def test_hash_matches_only_its_token():
    token = credentials.new_token()
    stored = credentials.token_hash(token)
    assert credentials.matches(token, stored)
    assert not credentials.matches(token + "x", stored)
    assert token.encode() not in stored


def test_token_cache_expires_and_keeps_only_hashes(monkeypatch):
    from domain.orgs import Org
    from ingest import token_cache

    clock = {"now": 100.0}
    monkeypatch.setattr(token_cache.time, "monotonic", lambda: clock["now"])
    cache: TokenCache[Org] = TokenCache(ttl=5)
    org = Org(id="o", slug="acme", name="Acme")
    cache.put("secret-token", org)
    assert cache.get("secret-token") == org
    assert all(b"secret-token" not in key for key in cache._entries)
    clock["now"] += 6
    assert cache.get("secret-token") is None
    assert TokenCache(ttl=0).get("secret-token") is None
