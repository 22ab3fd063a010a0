"""The ``--faults`` grammar of a rehearsal: what goes wrong at the venue, and on which bar.

A spec is a comma-separated list of ``KIND[=VALUE]@bar=N`` items (spaces are ignored);
``N`` is the 0-based row of the rehearsed bars. The kinds:

================  ==============================================================  ======
kind              what the fake venue does                                        value
================  ==============================================================  ======
``slip=BPS``      every fill on bar N executes BPS bps of its reference price     bps
                  worse (drift: that many bps of slippage on those fills)
``miss``          the orders due to fill on bar N never fill: the venue cancels   --
                  them (drift: missed fills)
``partial=F``     each fill on bar N delivers the fraction F (0 < F < 1, rounded  F
                  down to whole shares) and the venue cancels the rest (drift:
                  partial fills)
``reject``        the first order sent after bar N closes is refused by the       --
                  venue (IB error 201, Alpaca HTTP 403) (drift: a refusal)
``delay=T``       the fills of bar N reach the client T late (``200ms``, ``1s``;  time
                  IB: execDetails after orderStatus, Alpaca: the stream events)
``disconnect``    just before bar N trades the venue drops every client            --
                  connection (IB: the API sockets; Alpaca: the trade stream); the
                  adapter reconnects and recovers
``restart``       just before bar N trades the venue goes away and comes back      --
                  (Alpaca: REST and stream restart on the same ports; IB: every
                  socket drops, as when TWS restarts)
================  ==============================================================  ======

``disconnect``, ``restart`` and ``delay`` must not change a single fill: a rehearsal with
them has the same zero drift as one without (the adapter's recovery is what it proves).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FAULT_KINDS", "Fault", "parse_faults"]

FAULT_KINDS = ("slip", "miss", "partial", "reject", "delay", "disconnect", "restart")
"""The fault kinds a ``--faults`` spec may name."""

_VALUED = {"slip", "partial", "delay"}
_ITEM = re.compile(r"^(?P<kind>[a-z]+)(?:=(?P<value>[^@]+))?@bar=(?P<bar>\d+)$")
_TIME = re.compile(r"^(?P<n>\d+(?:\.\d*)?|\.\d+)(?P<unit>ms|s)?$")


@dataclass(frozen=True)
class Fault:
    """One planted fault: ``kind`` (see :data:`FAULT_KINDS`) at bar row ``bar``.

    ``value`` is the bps of ``slip``, the fraction of ``partial``, the seconds of
    ``delay`` (0 for the others).
    """

    kind: str
    bar: int
    value: float = 0.0

    def __str__(self) -> str:
        if self.kind == "delay":
            return f"delay={self.value * 1000:g}ms@bar={self.bar}"
        if self.kind in _VALUED:
            return f"{self.kind}={self.value:g}@bar={self.bar}"
        return f"{self.kind}@bar={self.bar}"


def parse_faults(spec: str | None) -> list[Fault]:
    """Parse a ``--faults`` spec (see the module docstring); ``None``/``""``: no faults.

    Raises ``ValueError`` naming the item that is wrong and why.

    Examples
    --------
    >>> [str(f) for f in parse_faults("disconnect@bar=50, delay=200ms@bar=80,slip=3@bar=9")]
    ['disconnect@bar=50', 'delay=200ms@bar=80', 'slip=3@bar=9']
    """
    out: list[Fault] = []
    if not spec or not spec.strip():
        return out
    for raw in spec.split(","):
        item = raw.replace(" ", "")
        if not item:
            continue
        m = _ITEM.match(item)
        if m is None:
            raise ValueError(f"fault {raw.strip()!r} is not KIND[=VALUE]@bar=N "
                             f"(e.g. miss@bar=12, slip=3@bar=30)")
        kind, value, bar = m["kind"], m["value"], int(m["bar"])
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault {raw.strip()!r}: unknown kind {kind!r}; one of "
                             f"{', '.join(FAULT_KINDS)}")
        if kind in _VALUED and value is None:
            raise ValueError(f"fault {raw.strip()!r}: {kind} needs a value ({kind}=...)")
        if kind not in _VALUED and value is not None:
            raise ValueError(f"fault {raw.strip()!r}: {kind} takes no value")
        number = 0.0
        if kind == "delay":
            t = _TIME.match(value or "")
            if t is None:
                raise ValueError(f"fault {raw.strip()!r}: delay is a time like 200ms or 1.5s")
            number = float(t["n"]) / (1000.0 if t["unit"] == "ms" else 1.0)
        elif value is not None:
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"fault {raw.strip()!r}: {value!r} is not a number") from None
            if kind == "partial" and not 0 < number < 1:
                raise ValueError(f"fault {raw.strip()!r}: partial is a fraction in (0, 1)")
            if kind == "slip" and not abs(number) < 1e4:
                raise ValueError(f"fault {raw.strip()!r}: slip is in bps (|slip| < 10000)")
        out.append(Fault(kind, bar, number))
    return out
