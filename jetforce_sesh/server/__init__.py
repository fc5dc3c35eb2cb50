"""The Gemini server: Jetforce's, listening once the stores are open, careful
with hostile clients, counting what it answers, and stopping gracefully.

Knows the session core (it serves applications); knows no feature built on it.
"""

from jetforce_sesh.server.server import SessionServer

__all__ = ["SessionServer"]
