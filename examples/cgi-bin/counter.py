#!/usr/bin/env python3
"""The demo capsule's visit counter as a Python CGI program, sharing the count.

It demonstrates the bridge's Python client: a CGI script that reads and changes
the very record the in-process ``/counter`` route keeps (slab ``visits``, layout
``<QQ``: count, then every visit ever), so one certificate's visits add up
whichever of ``/counter``, this script or ``counter.c`` answers. ``session()``
holds the player's turn while the block runs, so no visit is lost when they
run at once. Serve it with::

    jetforce-sesh --dir examples --bridge-socket /run/capsule/sesh.sock

and open ``gemini://localhost/cgi-bin/counter.py``. The script imports only
``sesh_bridge`` (installed with jetforce-sesh, or copied beside it) and the
standard library, so it starts fast.
"""

import os
import sys

import sesh_bridge

#: Where the socket is when the server did not say (run by hand).
SOCKET = "/run/capsule/sesh.sock"


def main() -> None:
    fingerprint = os.environ.get("TLS_CLIENT_HASH")
    if not fingerprint:
        sys.stdout.write("60 Attach a client certificate to be counted\r\n")
        return
    try:
        with sesh_bridge.session(fingerprint, "visits", "<QQ", SOCKET) as fields:
            fields[0] += 1  # count
            fields[1] += 1  # every visit ever
    except sesh_bridge.NotValid as expired:
        # Expired or not yet valid: the answer the capsule's /counter gives.
        sys.stdout.write(f"62 {expired}\r\n")
        return
    except sesh_bridge.Refused as refused:
        sys.stdout.write(f"44 Busy: {refused}\r\n")
        return
    except sesh_bridge.BridgeError as error:
        sys.stdout.write(f"41 The visit counter is unavailable: {error}\r\n")
        return
    count = fields[0]
    sys.stdout.write(
        "20 text/gemini\r\n"
        "# Visit counter (Python CGI)\n\n"
        f"Visit number {count}.\n\n"
        "=> /cgi-bin/counter.py Visit again\n"
        "=> /counter The same count, in-process\n"
    )


if __name__ == "__main__":
    main()
