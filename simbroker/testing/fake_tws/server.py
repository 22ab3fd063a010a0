"""The fake TWS server: connections, start-up answers, orders, matching and faults."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from simbroker.bars import Bars
from simbroker.testing._market import BarReplay
from simbroker.testing.fake_tws import messages as msg
from simbroker.testing.fake_tws.account import AccountView
from simbroker.testing.fake_tws.history import historical_data
from simbroker.testing.fake_tws.margin import cash_short_refusal, margin_refusal
from simbroker.testing.fake_tws.messages import Execution, Order
from simbroker.testing.fake_tws.modify import _OPEN, _UNSENT, modify

__all__ = ["FAULTS", "NOTICES", "FakeTWS"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
FAULTS = ("drop_before_read", "drop_after_read", "drop_after_ack", "drop_during_fill",
          "drop_during_sync", "stall_sync", "stall_ack", "reject", "fill_on_modify",
          "drop_during_account", "stall_account", "repeat_refusal", "drop_after_refusal",
          "stall_refusal", "stall_time")
"""The fault kinds :meth:`FakeTWS.inject` arms."""
NOTICES = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data "
          "maintained.",
    2103: "Market data farm connection is broken:usfarm",
    2104: "Market data farm connection is OK:usfarm",
    2105: "HMDS data farm connection is broken:ushmds",
    2106: "HMDS data farm connection is OK:ushmds",
    2110: "Connectivity between Trader Workstation and server is broken. It will be "
          "restored automatically.",
}
"""TWS's text for the system notices :meth:`FakeTWS.notice` sends."""


@dataclass
class _Conn:
    writer: asyncio.StreamWriter
    client_id: int = -1
    version: int = 0
    positions: bool = False
    account_updates: bool = False
    muted: bool = False
    synced: bool = False
    tasks: list[Any] = field(default_factory=list)


class FakeTWS(AccountView, BarReplay):
    """The fake gateway. Start with :meth:`start` (or ``with``), stop with :meth:`stop`.

    Parameters
    ----------
    server_version
        The highest version it offers (the client's maximum caps it).
    account
        The one managed account.
    cash
        Starting cash (``TotalCashValue``).
    positions
        Starting positions ``{symbol: qty}``.
    commission_per_share, min_commission
        IBKR fixed-style commissions per execution.
    master_client_id
        A client id that also receives every other client's order events (TWS's
        "master API client id"); ``None`` for none.
    account_type
        ``"margin"`` (Reg T: ``initial_margin`` 0.5 and ``maintenance_margin`` 0.25 of
        the gross position value by default) or ``"cash"`` (both 1.0: no borrowing,
        and no short sales: error 201).
    initial_margin, maintenance_margin
        The rates behind ``InitMarginReq`` and ``MaintMarginReq``.
    day_trades_remaining
        ``DayTradesRemaining`` of an unflagged margin account under 25,000 of equity (and
        of a cash account): the day trades left in the five-day window (3, 2, 1, 0).
    pattern_day_trader
        The account is flagged a pattern day trader.

    Day trades as TWS reports them (``DayTradesRemaining`` and ``DayTradesRemainingT+1``
    .. ``T+4``, the "day trades left" of TWS's account window for today and the next
    four days; "-1 means that the user can put on unlimited day trades"): a margin
    account with ``NetLiquidation`` of 25,000 or more reports -1 in all five, flagged or
    not; a flagged one under 25,000 reports 0 in all five (IB restricts it to closing
    orders for 90 days); an unflagged one reports ``day_trades_remaining`` (the fake
    keeps no day history: all five alike). A margin account under 25,000 with no day
    trade left (flagged, or its three used) is refused any order that opens a position
    with error 201 and IB's "potential pattern day trader" reason.

    The account figures follow TWS's definitions for stocks: ``EquityWithLoanValue`` =
    ``NetLiquidation`` = cash + the positions' market value, ``AvailableFunds`` = that
    less ``InitMarginReq``, ``ExcessLiquidity`` = that less ``MaintMarginReq``,
    ``BuyingPower`` = ``AvailableFunds`` / ``initial_margin`` (2x under Reg T); these
    account values, like TWS's, do not deduct open orders. An order of no parent that
    would take the initial margin of the positions and of every working order above the
    equity with loan value is refused with error 201 and TWS's text for it
    (:mod:`simbroker.testing.fake_tws.margin`: open orders claim their opening part,
    closing parts and a bracket's exits claim nothing beyond their parent; the new
    order's own closing part is credited with the margin it frees, as TWS's what-if is).
    A modification of a working order is weighed against the buying power the same way,
    the order it modifies set aside; refused, it gets error 201 on the order's id and the
    original order keeps working unchanged.
    """

    def __init__(self, *, server_version: int = 178, account: str = "DU1234567",
                 cash: float = 100_000.0, positions: dict[str, float] | None = None,
                 commission_per_share: float = 0.005, min_commission: float = 1.0,
                 master_client_id: int | None = None, account_type: str = "margin",
                 initial_margin: float | None = None, maintenance_margin: float | None = None,
                 day_trades_remaining: int = -1, pattern_day_trader: bool = False):
        if account_type not in ("cash", "margin"):
            raise ValueError(f"account_type must be 'cash' or 'margin', got {account_type!r}")
        cash_acct = account_type == "cash"
        self.account_type = account_type
        self.initial_margin = (1.0 if cash_acct else 0.5) if initial_margin is None \
            else float(initial_margin)
        self.maintenance_margin = (1.0 if cash_acct else 0.25) \
            if maintenance_margin is None else float(maintenance_margin)
        self.day_trades_remaining = int(day_trades_remaining)
        self.pattern_day_trader = bool(pattern_day_trader)
        self.server_version = server_version
        self.account = account
        self.cash = float(cash)
        self.positions: dict[str, float] = {k: float(v) for k, v in (positions or {}).items()}
        self.prices: dict[str, float] = {}
        self.commission_per_share = commission_per_share
        self.min_commission = min_commission
        self.orders: dict[int, Order] = {}
        self.executions: list[Execution] = []
        self.reject_symbols: set[str] = set()
        self.partial_fills = 1
        self.exec_before_status = False
        self.exec_delay = 0.0
        self.reject_modify = 0
        """An error code (e.g. 201) every modification is refused with; 0: none."""
        self.duplicate_events = False
        """True: every openOrder and orderStatus is sent twice (TWS may repeat them)."""
        self.master_client_id = master_client_id
        self.silent = False
        self.list_completed = True
        """False: reqCompletedOrders lists none (TWS keeps only the current day's)."""
        self.faults_injected: Counter[str] = Counter()
        self._armed: list[list[Any]] = []
        self.placed: list[dict[str, Any]] = []
        """Every placeOrder TWS read, decoded (the wire-level record of what was sent)."""
        self.clock = datetime(2024, 3, 4, 15, 0, tzinfo=timezone.utc)
        self.port = 0
        self.connections_made = 0
        self._next_id = 1
        self._perm = 1000
        self._conns: list[_Conn] = []
        self._bars: Bars | None = None
        self._bars_visible = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeTWS:
        """Start serving on a loopback port (:attr:`port`)."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def main() -> None:
                self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()

            loop.run_until_complete(main())
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-tws", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake TWS did not start")
        return self

    def stop(self) -> None:
        """Close every connection and the server."""
        loop = self._loop
        if loop is None:
            return

        async def close() -> None:
            for c in list(self._conns):
                c.writer.close()
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def __enter__(self) -> FakeTWS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, fn: Any, *args: Any) -> Any:
        """Run ``fn`` on the server's loop and wait for it."""
        loop = self._loop
        assert loop is not None, "the fake is not running"

        async def call() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(call(), loop).result(10)

    # ------------------------------------------------------------------ test controls
    def set_price(self, symbol: str, price: float) -> None:
        """Where ``symbol`` trades from the next :meth:`step` on."""
        with self._lock:
            self.prices[symbol] = float(price)

    def step(self) -> list[Execution]:
        """The market trades once at the current prices; returns the executions."""
        return list(self._run(self._step))

    def drop_connections(self) -> None:
        """Close every client socket now (a dropped connection)."""
        def drop() -> None:
            for c in list(self._conns):
                c.writer.close()
        self._run(drop)

    def inject(self, kind: str, *, delay: float = 0.0, skip: int = 0) -> None:
        """Arm one fault of ``kind`` (see :data:`FAULTS`); it fires at the next chance
        after ``skip`` chances have passed (``skip=2`` with ``drop_before_read``: the
        third placeOrder from now dies in the socket, e.g. a bracket's last leg).

        ``delay`` is how late the answer is for ``stall_sync``, ``stall_ack``,
        ``stall_refusal`` and ``stall_time`` (reqCurrentTime, a client's round trip).
        """
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        with self._lock:
            self._armed.append([kind, float(delay), int(skip)])

    def armed(self) -> list[str]:
        """Faults armed and not fired yet."""
        with self._lock:
            return [a[0] for a in self._armed]

    def notice(self, code: int, text: str | None = None) -> None:
        """Send system notice ``code`` (1100, 1101, 1102, 2103-2110, ...) to every client."""
        def send() -> None:
            for c in list(self._conns):
                if c.client_id >= 0:
                    self._error(c, -1, code, text or NOTICES.get(code, f"notice {code}"))
        self._run(send)

    def _fire(self, kind: str) -> float | None:
        """Take an armed ``kind`` fault (its delay), or ``None`` when none is armed."""
        for i, armed in enumerate(self._armed):
            if armed[0] == kind:
                if armed[2] > 0:
                    armed[2] -= 1
                    return None
                del self._armed[i]
                self.faults_injected[kind] += 1
                return float(armed[1])
        return None

    @staticmethod
    def _drop(conn: _Conn) -> None:
        conn.muted = True
        transport = conn.writer.transport
        with contextlib.suppress(Exception):
            transport.abort()

    @property
    def clients(self) -> list[int]:
        """Client ids connected now."""
        return [c.client_id for c in self._conns if c.client_id >= 0]

    # ------------------------------------------------------------------ wire
    def _send(self, conn: _Conn, *fields: Any) -> None:
        if conn.muted:
            return
        payload = "".join(msg.text(f) + "\0" for f in fields).encode()
        with contextlib.suppress(Exception):
            conn.writer.write(struct.pack(">I", len(payload)) + payload)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        self.connections_made += 1
        try:
            if await reader.readexactly(4) != b"API\0":
                return
            size = struct.unpack(">I", await reader.readexactly(4))[0]
            versions = (await reader.readexactly(size)).decode().split(" ")[0]
            lo, _, hi = versions[1:].partition("..")
            conn.version = min(self.server_version, int(hi or lo))
            if self.silent:  # accepts, never answers
                await reader.read()
                return
            self._send(conn, conn.version, self.clock.strftime("%Y%m%d %H:%M:%S UTC"))
            self._conns.append(conn)
            while True:
                size = struct.unpack(">I", await reader.readexactly(4))[0]
                fields = (await reader.readexactly(size)).decode().split("\0")[:-1]
                with self._lock:
                    if not self._handle(conn, fields):
                        break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if conn in self._conns:
                self._conns.remove(conn)
            writer.close()

    def _error(self, conn: _Conn, req_id: int, code: int, text: str) -> None:
        self._send(conn, *msg.error(req_id, code, text, conn.version))

    def _position(self, conn: _Conn, sym: str, qty: float) -> None:
        self._send(conn, *msg.position(self.account, sym, qty, self.prices.get(sym, 0.0)))

    def _open_order(self, conn: _Conn, o: Order) -> None:
        for _ in range(2 if self.duplicate_events else 1):
            self._send(conn, *msg.open_order(o, conn.version))

    def _completed_order(self, conn: _Conn, o: Order) -> None:
        self._send(conn, *msg.completed_order(o, conn.version,
                                              datetime.now(timezone.utc)))

    def _contract_details(self, conn: _Conn, req: int, sym: str, sec_type: str) -> None:
        known = sym in self.prices or (self._bars is not None and sym in self._bars)
        if not known or sec_type not in ("STK", ""):
            self._error(conn, req, 200, "No security definition has been found for the "
                                        "request")
        else:
            self._send(conn, *msg.contract_details(req, sym, conn.version))
        self._send(conn, 52, 1, req)

    def _order_status(self, conn: _Conn, o: Order, last: float) -> None:
        for _ in range(2 if self.duplicate_events else 1):
            self._send(conn, *msg.order_status(o, last))

    def _exec_details(self, conn: _Conn, ex: Execution, req: int) -> None:
        self._send(conn, *msg.exec_details(ex, req, conn.version))

    def _commission(self, conn: _Conn, ex: Execution) -> None:
        self._send(conn, *msg.commission(ex))

    def _handle(self, conn: _Conn, f: list[str]) -> bool:
        msg = int(f[0])
        if msg == 71:  # startApi
            cid = int(f[2])
            if cid in self.clients:
                self._error(conn, -1, 326, "Unable to connect as the client id is already "
                                           "in use. Retry with a unique client id.")
                return False
            conn.client_id = cid
            self._send(conn, 15, 1, self.account)
            self._send(conn, 9, 1, self._next_id)
        elif msg == 61:  # reqPositions
            conn.positions = True
            late = None if conn.synced else self._fire("stall_sync")
            if late is not None and self._loop is not None:
                self._loop.call_later(late, self._positions_answer, conn)
            else:
                self._positions_answer(conn)
        elif msg == 5:  # reqOpenOrders
            for o in self.orders.values():
                if o.status in _OPEN and o.client_id == conn.client_id:
                    self._open_order(conn, o)
                    self._order_status(conn, o, 0.0)
            self._send(conn, 53, 1)
        elif msg == 99:  # reqCompletedOrders
            for o in self.orders.values():
                if o.status not in (*_OPEN, _UNSENT) and o.client_id == conn.client_id \
                        and self.list_completed:
                    self._completed_order(conn, o)
            self._send(conn, 102)
        elif msg == 6:  # reqAccountUpdates
            conn.account_updates = f[2] == "1"
            if conn.account_updates and conn.synced:
                if self._fire("drop_during_account") is not None:
                    self._drop(conn)
                    return False
                late = self._fire("stall_account")
                if late is not None and self._loop is not None:
                    self._loop.call_later(late, self._account_answer, conn)
                    return True
            if conn.account_updates:
                self._account_answer(conn)
        elif msg == 76:  # reqAccountUpdatesMulti
            req = int(f[2])
            for key, value, ccy in self._values():
                self._send(conn, 73, 1, req, self.account, "", key, value, ccy)
            self._send(conn, 74, 1, req)
        elif msg == 7:  # reqExecutions
            if not conn.synced and self._fire("drop_during_sync") is not None:
                self._drop(conn)
                return False
            conn.synced = True
            req = int(f[2])
            for ex in self.executions:
                if ex.order.client_id == conn.client_id:
                    self._exec_details(conn, ex, req)
                    self._commission(conn, ex)
            self._send(conn, 55, 1, req)
        elif msg == 49:  # reqCurrentTime
            late = self._fire("stall_time")
            if late is not None and self._loop is not None:
                self._loop.call_later(late, self._send, conn, 49, 1,
                                      int(self.clock.timestamp()))
                return True
            self._send(conn, 49, 1, int(self.clock.timestamp()))
        elif msg == 8:  # reqIds
            self._send(conn, 9, 1, self._next_id)
        elif msg == 3:  # placeOrder
            return self._place_with_faults(conn, f)
        elif msg == 4:  # cancelOrder
            self._cancel(conn, int(f[2]))
        elif msg == 20:  # reqHistoricalData
            self._historical(conn, f)
        elif msg == 9:  # reqContractDetails
            self._contract_details(conn, int(f[2]), f[4], f[5])
        return True

    def _positions_answer(self, conn: _Conn) -> None:
        with self._lock:
            for sym, qty in sorted(self.positions.items()):
                self._position(conn, sym, qty)
            self._send(conn, 62, 1)

    def _place_with_faults(self, conn: _Conn, f: list[str]) -> bool:
        if self._fire("drop_before_read") is not None:
            self._drop(conn)  # the order dies in the socket
            return False
        if self._fire("drop_after_read") is not None:
            conn.muted = True
            self._place(conn, f)
            self._drop(conn)
            return False
        if self._fire("reject") is not None:
            self._error(conn, int(f[1]), 201, "Order rejected - reason:fault injected")
            return True
        late = self._fire("stall_ack")
        if late is not None and self._loop is not None:
            conn.muted = True  # TWS takes it now, says so later
            self._place(conn, f)
            conn.muted = False
            o = self.orders.get(int(f[1]))
            if o is not None:
                self._loop.call_later(late, self._late_ack, conn, o)
            return True
        self._place(conn, f)
        if self._fire("drop_after_ack") is not None:
            self._drop(conn)
            return False
        return True

    def _late_ack(self, conn: _Conn, o: Order) -> None:
        with self._lock:
            self._open_order(conn, o)
            self._order_status(conn, o, 0.0)

    def _account_answer(self, conn: _Conn) -> None:
        with self._lock:
            self._account_values(conn)
            self._send(conn, 8, 1, self.clock.strftime("%H:%M"))
            self._send(conn, 54, 1, self.account)

    def _owners(self, o: Order) -> list[_Conn]:
        """The connections TWS tells about ``o``: its client's, and the master client's."""
        return [c for c in self._conns if c.client_id >= 0 and (
            c.client_id == o.client_id or c.client_id == self.master_client_id)]

    # ------------------------------------------------------------------ orders
    def _decode_place(self, conn: _Conn, f: list[str]) -> dict[str, Any]:
        """The placeOrder fields the fake acts on (``client.py:placeOrder``: a fixed
        prefix, then ``faProfile`` only below 177, then fixed offsets to the trail)."""
        def num(x: str) -> float | None:
            return float(x) if x else None

        base = 42 if conn.version >= 177 else 43  # modelCode
        return {
            "order_id": int(f[1]), "client_id": conn.client_id, "symbol": f[3],
            "action": f[16], "qty": float(f[17]), "order_type": f[18], "lmt": num(f[19]),
            "aux": num(f[20]), "tif": f[21] or "DAY", "oca_group": f[22],
            "account": f[23] or self.account, "order_ref": f[26],
            "transmit": f[27] != "0", "parent_id": int(f[28] or 0),
            "outside_rth": f[33] == "1", "oca_type": int(f[base + 4] or 0),
            "trail_stop": num(f[base + 26]), "trail_pct": num(f[base + 27]),
        }

    def _place(self, conn: _Conn, f: list[str]) -> None:
        p = self._decode_place(conn, f)
        self.placed.append(p)
        oid, sym, qty = p["order_id"], p["symbol"], p["qty"]
        existing = self.orders.get(oid)
        if existing is not None:
            self._modify(conn, existing, p)
            return
        self._next_id = max(self._next_id, oid + 1)
        if sym not in self.prices and (self._bars is None or sym not in self._bars):
            self._error(conn, oid, 200, "No security definition has been found for the "
                                        "request")
            return
        if sym in self.reject_symbols or qty <= 0:
            self._error(conn, oid, 201, f"Order rejected - reason:{sym} is not allowed")
            return
        if not p["parent_id"]:
            refusal = cash_short_refusal(self, p, qty) or \
                self._pdt_refusal(p) or margin_refusal(self, p)
            if refusal is not None:
                self._error(conn, oid, 201, refusal)
                return
        parent = self.orders.get(p["parent_id"]) if p["parent_id"] else None
        if p["parent_id"] and (parent is None or parent.client_id != conn.client_id
                               or parent.status not in (*_OPEN, _UNSENT)):
            self._error(conn, oid, 201, f"Order rejected - reason:parent order "
                                        f"{p['parent_id']} is not an open order")
            return
        self._perm += 1
        o = Order(oid, conn.client_id, self._perm, sym, p["action"], qty, p["order_type"],
                  p["lmt"], p["aux"], p["tif"], p["account"], p["order_ref"],
                  parent_id=p["parent_id"], transmit=p["transmit"],
                  oca_group=p["oca_group"], oca_type=p["oca_type"],
                  outside_rth=p["outside_rth"], trail_stop=p["trail_stop"],
                  trail_pct=p["trail_pct"])
        self.orders[oid] = o
        if not o.transmit:
            # TWS holds it in its window, sends nothing and never works it: only a
            # transmitting order of its group (or a click) sends it.
            o.status = _UNSENT
            return
        group = [o]
        if parent is not None:  # the transmitting child sends its parent and siblings
            group = [parent, *self._children(parent)]
        for g in group:
            if g.status == _UNSENT or g is o:
                self._activate(g)
            for m in self._owners(g):
                self._open_order(m, g)
                self._order_status(m, g, 0.0)

    def _children(self, parent: Order) -> list[Order]:
        return [c for c in self.orders.values() if c.parent_id == parent.order_id
                and c.client_id == parent.client_id]

    def _activate(self, o: Order) -> None:
        """``o`` starts to work: children wait (PreSubmitted) until their parent fills,
        sized to what it filled."""
        o.worked = True
        parent = self.orders.get(o.parent_id) if o.parent_id else None
        if parent is not None and parent.filled <= 0:
            o.status = "PreSubmitted"
            return
        if parent is not None:
            o.qty = min(o.qty, parent.filled)
        o.status = "Submitted"
        if o.order_type == "TRAIL":
            self._trail_start(o)

    def _trail_start(self, o: Order) -> None:
        px = self.prices.get(o.symbol)
        if px is None:
            return
        o.extreme = px
        level = self._trail_level(o, px)
        if o.trail_stop is None:
            o.trail_stop = level

    def _trail_level(self, o: Order, extreme: float) -> float:
        off = extreme * o.trail_pct / 100.0 if o.trail_pct is not None else o.aux or 0.0
        return extreme - off if o.action == "SELL" else extreme + off

    def _modify(self, conn: _Conn, o: Order, p: dict[str, Any]) -> None:
        """placeOrder with the id of an order TWS holds: :mod:`.modify`."""
        modify(self, conn, o, p)

    def _cancel(self, conn: _Conn, oid: int) -> None:
        o = self.orders.get(oid)
        if o is None or o.client_id != conn.client_id:
            self._error(conn, oid, 10147, f"OrderId {oid} that needs to be cancelled is not "
                                          f"found.")
            return
        if o.status not in (*_OPEN, _UNSENT):
            self._error(conn, oid, 10148, f"OrderId {oid} that needs to be cancelled cannot "
                                          f"be cancelled, state: {o.status}.")
            return
        self._cancel_one(o)
        self._error(conn, oid, 202, "Order Canceled - reason:")
        if o.filled <= 0:  # an unfilled parent takes its children with it
            for child in self._children(o):
                if child.status in (*_OPEN, _UNSENT):
                    self._cancel_one(child)

    def _cancel_one(self, o: Order) -> None:
        unsent = o.status == _UNSENT
        o.status = "Cancelled"
        if not unsent:
            for m in self._owners(o):
                self._order_status(m, o, 0.0)

    def auction(self, which: str) -> list[Execution]:
        """The opening (``"open"``: ``tif=OPG`` orders) or closing (``"close"``: ``MOC``,
        ``LOC``) auction crosses at the current price; its orders that do not fill
        (a limit the price does not satisfy) are canceled, as at IB."""
        if which not in ("open", "close"):
            raise ValueError(f"auction is 'open' or 'close', got {which!r}")
        return list(self._run(self._auction, which))

    def _auction(self, which: str) -> list[Execution]:
        made = []
        for o in list(self.orders.values()):
            if o.status != "Submitted" or not self._in_auction(o, which):
                continue
            px = self.prices.get(o.symbol)
            lmt = o.lmt if o.order_type in ("LMT", "LOC") else None
            buy = o.action == "BUY"
            if px is not None and (lmt is None or (px <= lmt if buy else px >= lmt)):
                made.append(self._fill(o, o.qty - o.filled, px))
            else:
                self._cancel_one(o)
        return made

    @staticmethod
    def _in_auction(o: Order, which: str) -> bool:
        if which == "open":
            return o.tif == "OPG"
        return o.order_type in ("MOC", "LOC")

    def _step(self) -> list[Execution]:
        self.clock += timedelta(seconds=1)
        made = []
        # Children a parent's fill releases in this step trade from the next one.
        working = [o for o in self.orders.values() if o.status == "Submitted"]
        for o in working:
            if o.status != "Submitted" or o.tif == "OPG" or o.order_type in ("MOC", "LOC"):
                continue  # PreSubmitted children wait for their parent; auctions wait
            ex = self._match(o)
            if ex is not None:
                made.append(ex)
            if o.tif in ("IOC", "FOK") and o.status in _OPEN:
                self._cancel_one(o)  # the rest of an immediate-or-cancel order
        return made

    def _match(self, o: Order) -> Execution | None:
        px = self.prices.get(o.symbol)
        if px is None:
            return None
        buy = o.action == "BUY"
        if o.order_type == "TRAIL":
            if o.trail_stop is None:
                self._trail_start(o)
                return None
            hit = px >= o.trail_stop if buy else px <= o.trail_stop
            if not hit:  # tested against the level so far, then ratcheted
                assert o.extreme is not None
                o.extreme = min(o.extreme, px) if buy else max(o.extreme, px)
                level = self._trail_level(o, o.extreme)
                o.trail_stop = min(o.trail_stop, level) if buy else max(o.trail_stop, level)
                return None
            o.triggered = True
        if o.order_type in ("STP", "STP LMT") and not o.triggered:
            assert o.aux is not None
            if (buy and px >= o.aux) or (not buy and px <= o.aux):
                o.triggered = True
            else:
                return None
        if o.order_type in ("LMT", "STP LMT"):
            assert o.lmt is not None
            if (buy and px > o.lmt) or (not buy and px < o.lmt):
                return None
            price = min(px, o.lmt) if buy else max(px, o.lmt)
        else:
            price = px
        left = o.qty - o.filled
        part = o.qty / self.partial_fills
        size = left if left <= part * (1 + 1e-12) or o.tif == "FOK" else part
        return self._fill(o, size, price)

    def _fill(self, o: Order, size: float, price: float, *, when: datetime | None = None,
              commission: float | None = None) -> Execution:
        # ``when``/``commission``: the bar market's (fake_tws.bar_market) time and fee.
        sign = 1.0 if o.action == "BUY" else -1.0
        o.avg_price = (o.avg_price * o.filled + size * price) / (o.filled + size)
        o.filled += size
        o.fills += 1
        if o.filled >= o.qty * (1 - 1e-12):
            o.status = "Filled"
        if commission is None:
            commission = max(self.min_commission, size * self.commission_per_share)
        self.cash -= sign * size * price + commission
        pos = self.positions.get(o.symbol, 0.0) + sign * size
        if abs(pos) < 1e-12:
            self.positions.pop(o.symbol, None)
        else:
            self.positions[o.symbol] = pos
        # TWS stamps executions with its clock to the whole second.
        when = (when or datetime.now(timezone.utc)).replace(microsecond=0)
        ex = Execution(f"{o.perm_id:010x}.{o.fills:02d}.01", o, when, size, price, o.filled,
                       o.avg_price, commission)
        self.executions.append(ex)
        dropped: set[int] = set()
        for conn in self._owners(o):  # a disconnected owner learns of it at reqExecutions
            if conn.client_id == o.client_id and self._fire("drop_during_fill") is not None:
                self._order_status(conn, o, price)
                self._exec_details(conn, ex, -1)
                self._drop(conn)
                dropped.add(id(conn))
            elif self.exec_before_status:
                self._exec_details(conn, ex, -1)
                self._order_status(conn, o, price)
                self._commission(conn, ex)
            elif self.exec_delay > 0 and self._loop is not None:
                self._order_status(conn, o, price)
                self._loop.call_later(self.exec_delay, self._late_exec, conn, ex)
            else:
                self._order_status(conn, o, price)
                self._exec_details(conn, ex, -1)
                self._commission(conn, ex)
        self._after_fill(o)
        for c in self._conns:
            if id(c) in dropped:
                continue
            if c.positions:
                self._position(c, o.symbol, pos)
            if c.account_updates:
                self._account_values(c)
        return ex

    def _after_fill(self, o: Order) -> None:
        """A fill of ``o`` cancels its OCA siblings (``ocaType`` 1, and a bracket's
        children, which TWS groups so) and sizes its children to what it filled."""
        siblings: list[Order] = []
        if o.parent_id:
            parent = self.orders.get(o.parent_id)
            if parent is not None:
                siblings += [c for c in self._children(parent) if c is not o]
        if o.oca_group:
            siblings += [s for s in self.orders.values() if s is not o
                         and s.oca_group == o.oca_group and s.client_id == o.client_id
                         and s not in siblings]
        for s in siblings:
            if s.status in _OPEN:
                self._cancel_one(s)
        for child in self._children(o):
            if child.status not in _OPEN:
                continue
            was = child.status
            child.qty = o.filled if child.filled <= 0 else max(child.filled, o.filled)
            if was == "PreSubmitted":
                child.status = "Submitted"
                if child.order_type == "TRAIL":
                    self._trail_start(child)
            for m in self._owners(child):
                self._open_order(m, child)
                self._order_status(m, child, 0.0)

    def _late_exec(self, conn: _Conn, ex: Execution) -> None:
        with self._lock:
            self._exec_details(conn, ex, -1)
            self._commission(conn, ex)

    # ------------------------------------------------------------------ bars
    def _historical(self, conn: _Conn, f: list[str]) -> None:
        self._send(conn, *historical_data(self._bars, self._bars_visible, self.clock, f))
