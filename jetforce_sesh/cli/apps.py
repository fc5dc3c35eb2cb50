"""Which application ``--app`` names, and the session applications in it:
shared by the server command and by ``export`` and ``import``."""

from __future__ import annotations

import importlib
import os
import sys

from jetforce.app.base import JetforceApplication
from jetforce.app.composite import CompositeApplication

from jetforce_sesh.cli.checks import UsageError
from jetforce_sesh.errors import why
from jetforce_sesh.session.application import SessionApplication

DEFAULT_APP = "jetforce_sesh:app"


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
        raise UsageError(
            f"--app {spec!r}: importing {module_name} failed: {error}"
        ) from None
    except SystemExit as error:
        raise UsageError(
            f"--app {spec!r}: importing {module_name} called sys.exit({error.code!r});"
            f" a capsule module must not exit when imported"
        ) from None
    except Exception as error:
        raise UsageError(
            f"--app {spec!r}: importing {module_name} failed: {why(error)}"
        ) from None
    try:
        app = getattr(module, attr)
    except AttributeError:
        raise UsageError(
            f"--app {spec!r}: module {module_name!r} has no attribute {attr!r};"
            f" name the application object after the colon"
        ) from None
    except Exception as error:
        raise UsageError(
            f"--app {spec!r}: reading {attr!r} from {module_name} failed: {why(error)}"
        ) from None
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
