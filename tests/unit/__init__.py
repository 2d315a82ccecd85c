"""Unit tests of the pure layers; helpers: :mod:`.advance_harness`."""
