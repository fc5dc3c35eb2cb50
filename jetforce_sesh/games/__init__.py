"""The demo capsule's games, importable as ``jetforce_sesh.games``."""
