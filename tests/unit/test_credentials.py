from core import credentials


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
