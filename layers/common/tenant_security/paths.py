"""How a request path is read: one decoding rule for the handlers and the authorizer.

Kept free of heavy imports: the authorizer's cold start imports it.
"""

from __future__ import annotations

from urllib.parse import unquote


def decode_path_text(value: object) -> str:
    """A path or path parameter as a REST API hands it to Lambda (still percent-encoded, as the
    client sent it), decoded once: ``%252F`` is the text ``%2F``; bytes that are not UTF-8 become
    U+FFFD, which the request rules refuse. The handlers (``http.percent_decoded``) and the
    authorizer decode with this one rule."""
    return unquote(str(value), errors="replace")
