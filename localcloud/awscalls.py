"""moto's server, counting the AWS calls it answers (by service and operation): what a request
or a workflow costs, as a benchmark wants to know."""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/")


class CountingMotoServer:
    """moto in server mode on a thread, with a call counter."""

    def __init__(self, host: str, port: int) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        app = DomainDispatcherApplication(create_backend_app)
        self._server: BaseWSGIServer = make_server(
            host, port, self._counting(app), threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="moto"
        )

    def _counting(self, app: Any) -> Any:
        def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
            if not environ.get("PATH_INFO", "").startswith("/moto-api"):
                match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
                caller, service = (match.group(1), match.group(2)) if match else ("-", "unsigned")
                operation = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1] or environ.get(
                    "REQUEST_METHOD"
                )
                with self._lock:
                    self.calls[f"{caller}|{service}:{operation}"] += 1
            return app(environ, start_response)

        return wsgi

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
