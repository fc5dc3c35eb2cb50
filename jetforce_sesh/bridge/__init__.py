"""The CGI bridge: CGI programs in C or Python share the slabs' records over a
UNIX socket, taking the same turns as in-process routes.

A second front end on the session core (beside the Gemini server): knows slabs,
turns and stores; knows nothing of accounts or the server.
"""

from jetforce_sesh.bridge.protocol import BridgeFactory, BridgeProtocol
from jetforce_sesh.bridge.service import BridgeService, bridged, check_keys

__all__ = ["BridgeFactory", "BridgeProtocol", "BridgeService", "bridged", "check_keys"]
