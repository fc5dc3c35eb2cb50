"""The CGI bridge: CGI programs in C or Python share the slabs' records over a
UNIX socket, taking the same turns as in-process routes, within bounds that
keep a misbehaving local client from hurting the capsule's players.

A second front end on the session core (beside the Gemini server): knows slabs,
turns and stores; knows nothing of accounts or the server.
"""

from jetforce_sesh.bridge.limits import BridgeLimits
from jetforce_sesh.bridge.protocol import BridgeFactory, BridgeProtocol
from jetforce_sesh.bridge.service import BridgeService, bridged, check_keys

__all__ = [
    "BridgeFactory",
    "BridgeLimits",
    "BridgeProtocol",
    "BridgeService",
    "bridged",
    "check_keys",
]
