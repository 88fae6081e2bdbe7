"""A local X-Ray daemon: the UDP endpoint the functions' X-Ray SDK sends segments to.

On AWS, ``Tracing: Active`` plus Powertools' ``capture_lambda_handler`` sends each handler's
response and exception to X-Ray as trace metadata unless told not to. ``sam local`` switches the
tracer off (``AWS_SAM_LOCAL``), which hid exactly that: an MFA secret in a response reached the
trace daemon on AWS and no test here. The local cloud runs the tracer as AWS does and writes
every segment it receives, one JSON document a line, to ``traces.jsonl`` in its state
directory, which the redaction tests scan as they scan the logs.

The wire format is the daemon's: a header line ``{"format": "json", "version": 1}``, a newline,
then the segment or subsegment document, one per datagram
(https://docs.aws.amazon.com/xray/latest/devguide/xray-api-sendingdata.html#xray-api-daemon).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import TextIO

log = logging.getLogger("localcloud.xray")

MAX_DATAGRAM = 64 * 1024
TRACES_FILE = "traces.jsonl"


class TraceSink:
    """A UDP daemon on ``host`` (a free port) appending each segment to ``path``."""

    def __init__(self, path: Path, host: str = "127.0.0.1") -> None:
        self.path = path
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((host, 0))
        self._socket.settimeout(0.2)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="xray-daemon")
        self._out: TextIO | None = None

    @property
    def address(self) -> str:
        """``host:port``, as ``AWS_XRAY_DAEMON_ADDRESS`` wants it."""
        host, port = self._socket.getsockname()
        return f"{host}:{port}"

    def start(self) -> TraceSink:
        """Open the file (0600, never through a symlink, in a directory only its owner may
        write: segments may hold what a handler handled) and serve."""
        from tenant_security.private_files import FILE_MODE, DirectoryPolicy, private_directory

        private_directory(self.path.parent, DirectoryPolicy.NOT_WORLD_WRITABLE)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
        self._out = os.fdopen(os.open(self.path, flags, FILE_MODE), "a", encoding="utf-8")
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                datagram = self._socket.recv(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            _header, _, document = datagram.decode("utf-8", errors="replace").partition("\n")
            try:
                segment = json.loads(document)
            except ValueError:
                log.warning("not an X-Ray segment: %d bytes", len(datagram))
                continue
            with self._lock:
                if self._out is None:  # stopped meanwhile
                    return
                self._out.write(json.dumps(segment, separators=(",", ":")) + "\n")
                self._out.flush()

    def stop(self) -> None:
        """Stop serving and close the file; safe before start and twice."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._socket.close()
        if self._out is not None:
            self._out.close()
            self._out = None
