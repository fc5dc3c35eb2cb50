"""``--dir``: Jetforce's file server, made safe to point at a capsule's directory.

Jetforce's ``StaticDirectoryApplication`` serves hidden files (``/.env``) and
follows symbolic links out of its directory, and a NUL in the path makes it fail
with a traceback. A capsule owner expects none of that: here hidden files and
anything that resolves outside the directory are ``51``, a NUL is ``59``, and
everything else is served as Jetforce serves it.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from jetforce.app.base import (
    DeferredResponse,
    EnvironDict,
    Request,
    Response,
    Status,
)
from jetforce.app.static import StaticDirectoryApplication

NOT_FOUND = Response(Status.NOT_FOUND, "Not Found")


class CapsuleFiles(StaticDirectoryApplication):
    """Files and CGI programs of one directory, and nothing outside it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Variables every CGI program gets besides the request's (the bridge's
        #: socket).
        self.cgi_environ: dict[str, str] = {}

    def run_cgi_script(
        self, filesystem_path: str | Path, environ: EnvironDict
    ) -> DeferredResponse:
        return super().run_cgi_script(filesystem_path, {**environ, **self.cgi_environ})

    def serve_static_file(self, request: Request) -> Response | DeferredResponse:
        path = request.path.strip("/")
        if "\x00" in path:
            return Response(Status.BAD_REQUEST, "Request holds a NUL byte")
        if any(part.startswith(".") for part in PurePosixPath(path).parts):
            return NOT_FOUND  # hidden files, and "." and ".." steps
        root = str(self.root)
        real = os.path.realpath(os.path.join(root, path))
        if real != root and not real.startswith(root + os.sep):
            return NOT_FOUND  # a symbolic link out of the directory
        return super().serve_static_file(request)
