"""Hiding credentials in URLs before they are shown: ``mask_url``.

A leaf: the error tree (``ogpu._errors``) masks the URL an error names, and
the chain configuration (``ogpu.chain``, which re-exports this) masks the
URLs it shows; both import it, and it imports neither.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["mask_url"]


def _looks_like_key(segment: str) -> bool:
    """A path segment that may be an API key: long, or letters mixed with digits."""
    if len(segment) >= 16:
        return True
    return len(segment) >= 8 and any(c.isalpha() for c in segment) and any(c.isdigit() for c in segment)


def mask_url(url: str) -> str:
    """Hide credentials for logs: user info, API-key-looking path segments, the query.

    Hosted nodes put the key in the path (``/v3/MYAPIKEY123``) or the query
    (``?apikey=...``); words like ``rpc`` or ``v3`` stay readable.
    """
    if "://" not in url and not url.startswith("//"):
        # No scheme ("localhost:8555", "node.example/v3/KEY"): read what comes
        # first as the host, as a person would, and show it as it was given.
        return mask_url("//" + url)[2:]
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    path = "/".join("***" if _looks_like_key(seg) else seg for seg in parts.path.split("/"))
    # As given: "localhost:8555" parses as scheme "localhost", and a "://"
    # added here would show the user a URL they never wrote.
    masked = f"{parts.scheme}:" if parts.scheme else ""
    if netloc or url[len(masked) :].startswith("//"):
        masked += f"//{netloc}"
    masked += path
    if parts.query:
        masked += "?***"
    if parts.fragment:
        masked += "#***"
    return masked
