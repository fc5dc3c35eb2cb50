"""The session core: slabs, turns, ``@session_route`` and the application.

A request's way: the application routes it to a session route, which finds
the player's key (``keys``), takes their turn at the slab (``turns``), loads
the record through the slab's store, runs the handler, and saves what changed
(``route``, ``visit``). Knows stores, records and Jetforce; knows no launcher,
no server and no feature built on it (accounts, the bridge, operations).
"""
