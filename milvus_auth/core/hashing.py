"""Password hashing as Milvus does it: bcrypt for storage, sha256 for the proxies' cache.

bcrypt runs 70-300 ms per call by design; callers on an event loop must run these in a thread.
"""

from __future__ import annotations

import hashlib
import hmac

import bcrypt

DEFAULT_BCRYPT_COST = 10
MIN_BCRYPT_COST = 4
MAX_BCRYPT_COST = 31
_ACCEPTED_PREFIXES = (b"$2a$", b"$2b$", b"$2y$")


def hash_password(password: str, cost: int = DEFAULT_BCRYPT_COST) -> str:
    """bcrypt-hash a password the way Go's `bcrypt.GenerateFromPassword` writes it (`$2a$`)."""
    if not MIN_BCRYPT_COST <= cost <= MAX_BCRYPT_COST:
        raise ValueError(f"bcrypt cost must be {MIN_BCRYPT_COST}..{MAX_BCRYPT_COST}, got {cost}")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost, prefix=b"2a"))
    return hashed.decode("ascii")


def verify_password(password: str, hashed: str) -> bool:
    """Check a password against a bcrypt hash of any cost and any of the $2a/$2b/$2y prefixes."""
    encoded = hashed.encode("ascii", errors="replace")
    if not encoded.startswith(_ACCEPTED_PREFIXES):
        return False
    # The three prefixes differ only in historical bug fixes that do not apply to the same input.
    normalised = b"$2b$" + encoded[4:]
    try:
        return bcrypt.checkpw(password.encode(), normalised)
    except ValueError:
        return False


def cache_digest(username: str, password: str) -> str:
    """Milvus's cache value: lowercase hex sha256 of password + username (proxy/util.go)."""
    return hashlib.sha256((password + username).encode()).hexdigest()


def digests_equal(left: str, right: str) -> bool:
    """Constant-time comparison of two cache digests."""
    return hmac.compare_digest(left.encode(), right.encode())
