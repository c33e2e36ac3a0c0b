"""What a log line may show of text a client chose: valid usernames only, bounded free text.

A username arrives in a header or a request, so it is whatever the client sends: 180,000
characters, control characters that forge log lines, or a password typed into the user field.
Only a name that passes Milvus's username rules (`core.validate_username`: at most 32 bytes of
letters, digits, `_`, `.` and `-`, starting with a letter, no surrounding blanks) can belong to a
user, and such a name is short and needs no escaping, so a log line shows it quoted and shows
anything else as `<invalid>`. Every log line with a username goes through `shown_username`.
Other client-chosen text (a method path, a refusal reason quoting a request) is escaped and cut.
"""

from __future__ import annotations

import re

from milvus_auth.core import USERNAME_PATTERN

INVALID = "<invalid>"
MAX_SHOWN_TEXT = 200
# fullmatch: the pattern's `$` alone would also accept a trailing newline.
_USERNAME = re.compile(USERNAME_PATTERN)


def valid_username(raw: str) -> bool:
    """Whether `raw`, exactly as sent, is a username Milvus could have stored."""
    return _USERNAME.fullmatch(raw) is not None


def shown_username(raw: str | None) -> str:
    """The username as a log line shows it: quoted when valid, `<invalid>` otherwise."""
    if raw is None:
        return "None"
    return repr(raw) if valid_username(raw) else INVALID


def shown_text(text: str) -> str:
    """Free text a client may have chosen, escaped and cut to `MAX_SHOWN_TEXT` characters."""
    if len(text) <= MAX_SHOWN_TEXT:
        return repr(text)
    return f"{text[:MAX_SHOWN_TEXT]!r}...({len(text)} chars)"
