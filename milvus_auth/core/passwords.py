"""A password policy stricter than Milvus's 6..72 bytes, for the places a password enters.

Milvus itself only checks the length. The seed's first best practice is strong passwords, so
every place where milvus-auth accepts a new password (the proxy's credential RPCs, `milvus-auth
users`, the operator's referenced Secrets, root's bootstrap password) checks it against one
`PasswordPolicy`. The defaults are Milvus's own rule, so nothing that works with Milvus breaks;
the chart turns the stricter checks on.

The strength estimate is zxcvbn (Dropbox's estimator, the PyPI `zxcvbn` port): it knows common
passwords, dictionary words, keyboard walks, dates and l33t substitutions, which a class count
cannot. The reasons name the rule that failed, never the password.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from zxcvbn import zxcvbn

from milvus_auth.core.credentials import MIN_PASSWORD_LENGTH, validate_password
from milvus_auth.core.errors import InvalidParameter

MAX_SCORE = 4  # zxcvbn scores 0 (guessable in seconds) to 4 (about 10^10 guesses or more)
MIN_USERNAME_IN_PASSWORD = 3  # shorter usernames are too likely to appear by chance
GENERATED_PASSWORD_BYTES = 24  # 32 URL-safe characters, well inside Milvus's 6..72 bytes
CLASS_NAMES = ("lowercase letters", "uppercase letters", "digits", "other characters")


class WeakPassword(InvalidParameter):
    """A password Milvus would take but the configured policy refuses; says which rule."""

    def __init__(self, rule: str) -> None:
        super().__init__("weak password", rule)
        self.rule = rule


@dataclass(frozen=True)
class PasswordPolicy:
    """What a new password must satisfy beyond Milvus's 6..72 bytes."""

    min_length: int = MIN_PASSWORD_LENGTH
    """Fewest UTF-8 bytes (Milvus counts bytes too)."""
    min_classes: int = 0
    """Fewest kinds of characters among lowercase, uppercase, digits and others (0..4)."""
    min_score: int | None = None
    """Least zxcvbn score (0..4); None turns the estimate, and the username check, off."""

    def __post_init__(self) -> None:
        if self.min_length < MIN_PASSWORD_LENGTH:
            raise ValueError(f"minimum length must be at least {MIN_PASSWORD_LENGTH}")
        if not 0 <= self.min_classes <= len(CLASS_NAMES):
            raise ValueError(f"minimum classes must be 0..{len(CLASS_NAMES)}")
        if self.min_score is not None and not 0 <= self.min_score <= MAX_SCORE:
            raise ValueError(f"minimum score must be 0..{MAX_SCORE}")

    def check(self, username: str, password: str) -> None:
        """Raise Milvus's `InvalidParameter` for a bad length, or `WeakPassword`; else return."""
        validate_password(password)
        if len(password.encode()) < self.min_length:
            raise WeakPassword(f"at least {self.min_length} bytes are required")
        found = character_classes(password)
        if found < self.min_classes:
            raise WeakPassword(
                f"at least {self.min_classes} of {', '.join(CLASS_NAMES)} are required, "
                f"found {found}"
            )
        if self.min_score is None:
            return
        if len(username) >= MIN_USERNAME_IN_PASSWORD and username.casefold() in password.casefold():
            raise WeakPassword("the password must not contain the username")
        score = int(zxcvbn(password, user_inputs=[username] if username else [])["score"])
        if score < self.min_score:
            raise WeakPassword(
                f"estimated strength {score} of {MAX_SCORE} is below the required "
                f"{self.min_score}; use a longer, less predictable password"
            )


def character_classes(password: str) -> int:
    """How many of lowercase letters, uppercase letters, digits and others the password has."""
    return sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )


STRICTEST = PasswordPolicy(
    min_length=4 * GENERATED_PASSWORD_BYTES // 3, min_classes=len(CLASS_NAMES), min_score=MAX_SCORE
)
"""What a generated password satisfies: so it passes any policy that can be configured."""


def generate_password(username: str) -> str:
    """32 random URL-safe characters that pass the strictest policy for `username`."""
    while True:
        password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
        try:
            STRICTEST.check(username, password)
        except WeakPassword:
            continue  # about one draw in three lacks a class; the next one will do
        return password
