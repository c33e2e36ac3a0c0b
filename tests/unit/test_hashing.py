"""bcrypt as Go writes it, any-cost verification, and Milvus's sha256 cache digest."""

from __future__ import annotations

import pytest

from milvus_auth.core import cache_digest, digests_equal, hash_password, verify_password

# Openwall crypt_blowfish vectors, which Go's x/crypto/bcrypt also verifies.
OPENWALL = [
    ("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),
    ("U*U*", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK"),
]


def test_root_digest_vector() -> None:
    assert cache_digest("root", "Milvus") == (
        "856ea91a83cdae9f381b98e6709e284aae6aca509935d2b5b4ebae9e3a8d28c5"
    )


def test_digest_depends_on_username_and_password() -> None:
    assert cache_digest("alice", "secret1") != cache_digest("bob", "secret1")
    assert cache_digest("alice", "secret1") != cache_digest("alice", "secret2")


def test_digests_equal() -> None:
    digest = cache_digest("root", "Milvus")
    assert digests_equal(digest, cache_digest("root", "Milvus"))
    assert not digests_equal(digest, cache_digest("root", "milvus"))


@pytest.mark.parametrize("cost", [4, 10])
def test_hash_is_go_format(cost: int) -> None:
    hashed = hash_password("secret1", cost)
    assert hashed.startswith(f"$2a${cost:02d}$")
    assert len(hashed) == 60
    assert verify_password("secret1", hashed)
    assert not verify_password("secret2", hashed)


def test_salts_differ() -> None:
    assert hash_password("secret1", 4) != hash_password("secret1", 4)


@pytest.mark.parametrize(("password", "hashed"), OPENWALL)
def test_external_vectors_verify(password: str, hashed: str) -> None:
    assert verify_password(password, hashed)


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_prefixes_accepted(prefix: str) -> None:
    hashed = prefix + hash_password("secret1", 4)[4:]
    assert verify_password("secret1", hashed)


@pytest.mark.parametrize("hashed", ["", "plain", "$1$abc", "$2a$04$short", "$2x$04$" + "a" * 53])
def test_garbage_hashes_never_verify(hashed: str) -> None:
    assert not verify_password("secret1", hashed)


@pytest.mark.parametrize("cost", [3, 32])
def test_cost_out_of_range(cost: int) -> None:
    with pytest.raises(ValueError, match="bcrypt cost"):
        hash_password("secret1", cost)
