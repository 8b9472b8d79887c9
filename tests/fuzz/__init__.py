"""Hostile-input fuzzing of every reader: shared harness (``harness``) and the campaign runner (``fuzz_readers``)."""
