"""Test support code: local servers and helpers that tests start themselves (nothing here runs in
production code)."""
