"""Tools for the platform's own development (not part of the public API)."""
