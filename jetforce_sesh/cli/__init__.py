"""The ``jetforce-sesh`` command: Jetforce's flags plus ours, start-up checks
that fail in one line, ``export`` and ``import``. The top layer: it knows every
other, and is the only one that touches Twisted's global reactor."""
