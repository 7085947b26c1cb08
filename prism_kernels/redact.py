"""Passwords out of URLs, for messages and logs (no heavy imports: the process supervisor uses it)."""

from __future__ import annotations

import re

__all__ = ["redact", "redact_url"]


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit for messages and logs.

    Both places a database URL can carry a password are redacted: the user info
    (``postgresql://user:secret@host/db`` becomes ``postgresql://user:***@host/db``) and a
    ``password=`` query parameter. Anything that is not a URL comes back unchanged.
    """
    # Greedy up to the last "@": a password with an unescaped "@" or "/" is still hidden.
    out = re.sub(r"^([A-Za-z][\w+.-]*://[^:@/?#]*:).*@", r"\1***@", url, flags=re.DOTALL)
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", out)


def redact(text: str) -> str:
    """``text`` (a message, an address) with the password of every URL in it replaced by
    ``***``: ``tcp://user:***@host:8786``."""
    return re.sub(r"(//[^/:@\s]*:)[^@/\s]*@", r"\1***@", text)
