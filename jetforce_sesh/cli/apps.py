"""Which application ``--app`` names, and the session applications in it:
shared by the server command and by ``export`` and ``import``."""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
import traceback
from pathlib import Path

from jetforce.app.base import JetforceApplication
from jetforce.app.composite import CompositeApplication

from jetforce_sesh.cli.checks import UsageError
from jetforce_sesh.errors import why
from jetforce_sesh.session.application import SessionApplication

DEFAULT_APP = "jetforce_sesh:app"

#: This package's own directory: its frames are the library's, not the capsule's.
_PACKAGE = str(Path(__file__).resolve().parents[1])


def _library(filename: str) -> bool:
    paths = sysconfig.get_paths()
    homes = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(filename.startswith(home + os.sep) for home in homes)


def origin(error: BaseException) -> str | None:
    """Where ``error`` came from, as ``file, line N``: the capsule's own line if
    the traceback passes through one (not this package's, not the standard
    library's or an installed package's), else the deepest line there is."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith("<")
    ]
    if not frames:
        return None
    ours = [f for f in frames if not f.filename.startswith(_PACKAGE + os.sep)]
    own = [f for f in ours if not _library(f.filename)]
    frame = (own or ours or frames)[-1]
    # Relative to where the server starts, if under it: as the owner typed it.
    relative = os.path.relpath(frame.filename)
    shown = frame.filename if relative.startswith(os.pardir) else relative
    return f"{shown}, line {frame.lineno}"


def _failed(spec: str, doing: str, error: BaseException) -> UsageError:
    """The one line for a capsule module that raised, and its traceback for
    ``--log-level debug``."""
    where = origin(error)
    at = f" ({where}; --log-level debug shows the traceback)" if where else ""
    return UsageError(
        f"--app {spec!r}: {doing} failed: {why(error)}{at}",
        detail="".join(traceback.format_exception(error)),
    )


def load_app(spec: str) -> JetforceApplication | CompositeApplication:
    """Import ``MODULE:ATTR`` and check that it is a Jetforce application."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(
            f"--app {spec!r} must be MODULE:ATTR, e.g. --app {DEFAULT_APP}"
        )
    # Like `python -m`, find capsules in the directory the server starts from.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise UsageError(
                f"--app {spec!r}: no module named {error.name!r}; check the name, or"
                f" start from the directory that holds it"
            ) from None
        raise _failed(spec, f"importing {module_name}", error) from None
    except SystemExit as error:
        raise UsageError(
            f"--app {spec!r}: importing {module_name} called sys.exit({error.code!r});"
            f" a capsule module must not exit when imported"
        ) from None
    except Exception as error:
        raise _failed(spec, f"importing {module_name}", error) from None
    try:
        app = getattr(module, attr)
    except AttributeError:
        raise UsageError(
            f"--app {spec!r}: module {module_name!r} has no attribute {attr!r};"
            f" name the application object after the colon"
        ) from None
    except Exception as error:
        raise _failed(spec, f"reading {attr!r} from {module_name}", error) from None
    if not isinstance(app, (JetforceApplication, CompositeApplication)):
        raise UsageError(
            f"--app {spec!r} is a {type(app).__name__}, not a Jetforce application:"
            f" point it at a SessionApplication or JetforceApplication"
        )
    return app


def session_apps(app: object) -> list[SessionApplication]:
    if isinstance(app, SessionApplication):
        return [app]
    if isinstance(app, CompositeApplication):
        return [
            a for a in app.application_map.values() if isinstance(a, SessionApplication)
        ]
    return []


def jetforce_apps(app: object) -> list[JetforceApplication]:
    if isinstance(app, CompositeApplication):
        return [
            a
            for a in app.application_map.values()
            if isinstance(a, JetforceApplication)
        ]
    return [app] if isinstance(app, JetforceApplication) else []
