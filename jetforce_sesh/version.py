"""The release, where every layer may read it."""

VERSION = "0.3.0"
