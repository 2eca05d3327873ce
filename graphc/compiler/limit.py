"""The recompile limit: a function whose inputs or captured state keep changing would trace (and
compile) a new graph on every call, which costs far more than running it eagerly. After
`limit` traces, CompiledFunction warns once (RecompileWarning, naming what keeps changing),
stops tracing new variants and runs them eagerly; cached graphs still serve matching calls.

The limit: compile(..., recompile_limit=N), else GRAPHC_RECOMPILE_LIMIT, else the module-level
DEFAULT_RECOMPILE_LIMIT (set graphc.compiler.limit.DEFAULT_RECOMPILE_LIMIT). 0 or less: no limit."""
from __future__ import annotations

import os
import re
from collections import Counter

DEFAULT_RECOMPILE_LIMIT = 8


class RecompileWarning(UserWarning):
    """A compiled function reached its recompile limit: new variants now run eagerly."""


def resolve_limit(limit):
    """The limit in force: the compile option, else the environment, else the module default."""
    if limit is not None:
        return int(limit)
    env = os.environ.get("GRAPHC_RECOMPILE_LIMIT")
    if env:
        try:
            return int(env)
        except ValueError:
            raise ValueError(f"GRAPHC_RECOMPILE_LIMIT={env!r}: expected an integer") from None
    return DEFAULT_RECOMPILE_LIMIT


_SUBJECT = re.compile(r"(argument '[^']*'|captured '[^']*'|'[^']*\.grad'|global '[^']*'|closure variable "
                      r"'[^']*'|attribute '[^']*'|module '[^']*'|parameter '[^']*'|grad mode)")


def what_keeps_changing(reasons):
    """The subject (an argument, a captured tensor, a .grad, a global...) named most often by
    the retrace reasons, or None."""
    subjects = Counter(m.group(1) for r in reasons for m in [_SUBJECT.search(r)] if m)
    return subjects.most_common(1)[0][0] if subjects else None


def limit_message(name, limit, log, reason):
    """The warning: the limit, what keeps changing, the refused variant's reason."""
    reasons = [r for _, r in log[1:]] + [reason]
    subject = what_keeps_changing(reasons)
    keeps = f"{subject} keeps changing; " if subject else ""
    return (f"graphc.compile: '{name}' reached the recompile limit ({limit} traces): {keeps}this call's "
            f"new variant: {reason}. New variants now run eagerly (not compiled); the {len(log)} "
            "cached graphs still serve calls that match them. See .explain() for every trace's "
            "reason; raise the limit with graphc.compile(..., recompile_limit=N) or "
            "GRAPHC_RECOMPILE_LIMIT, or keep the changing input stable (same shape, dtype, "
            "requires_grad, python values).")


class EagerCall:
    """What a call past the recompile limit runs: the original function, eagerly."""

    def __init__(self, fn, args, kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def run(self, leaves):
        return self.fn(*self.args, **self.kwargs)
