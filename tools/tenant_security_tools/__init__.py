"""The operator's tools around the platform, installed by pyproject and never shipped in the layer.

- ``cli`` (``client``, ``settings``): the ``tenant-security`` console script, its HTTP client and
  saved session, and the environment it reads;
- ``demo``: `make demo`, a narrated tour on the running local cloud;
- ``openapi``: `make openapi`, the OpenAPI document generated from the handlers.

They may import ``tenant_security`` and ``localcloud``; nothing in either imports them.
"""
