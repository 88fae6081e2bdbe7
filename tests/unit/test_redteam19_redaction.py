"""Red team of issue 19: an API client secret is redacted wherever it is pasted (redaction.py:
"an API client secret ... wherever it is pasted"). The finding: the pattern asked for a word
boundary before ``tsk_``, so a secret right after a word character -- a JSON-escaped newline
(``\\n``), a percent-encoded separator (``%3A``, ``%0A``), ``id_`` -- reached the log in clear.
The fix: no leading word boundary."""

from __future__ import annotations

import pytest

from tenant_security.identity.client_secrets import new_secret
from tenant_security.redaction import scrub_text

SECRET = new_secret()


@pytest.mark.parametrize(
    "text",
    [
        f'config: "line one\\n{SECRET}"',  # a pasted multi-line value, JSON-escaped
        f"GET /callback?creds=client%3A{SECRET}",  # percent-encoded client_id:secret
        f"dump=%0A{SECRET}%0A",
        f"CLIENT_SECRET_{SECRET}",
    ],
    # ids of their own: the secret is random, and xdist's workers must collect the same tests
    ids=["json-escaped-newline", "percent-encoded-colon", "percent-encoded-newline", "underscore"],
)
def test_a_client_secret_is_redacted_after_any_character(text: str) -> None:
    assert SECRET not in scrub_text(text)


def test_a_client_secret_on_its_own_is_redacted() -> None:  # the control: this holds
    assert SECRET not in scrub_text(f"secret is {SECRET}")
