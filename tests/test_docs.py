"""The docs stay true: every primitive is in the IR reference, README's commands exist."""
import os
import re

import graphc  # noqa: F401
from graphc.ops.registry import PRIMITIVES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def test_every_primitive_is_in_the_ir_reference():
    text = _read("docs", "ir.md")
    missing = [p for p in PRIMITIVES if f"`{p}`" not in text]
    assert not missing, f"docs/ir.md does not describe: {missing}"


def test_readme_test_command_is_what_ci_runs():
    readme, ci = _read("README.md"), _read(".ci", "run")
    cmd = re.search(r"python3 -m pytest[^\n`]*", readme).group(0).strip()
    assert cmd in ci
