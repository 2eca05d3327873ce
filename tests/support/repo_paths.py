"""Paths the tests compute, in one place (the test files sit at different depths under tests/)."""
import os

SUPPORT = os.path.dirname(os.path.abspath(__file__))    # tests/support: the shared helpers
TESTS = os.path.dirname(SUPPORT)                        # tests/
ROOT = os.path.dirname(TESTS)                           # the repository
