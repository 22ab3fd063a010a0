"""A loopback Alpaca: Trading API v2, the trade_updates stream and stock bars.

For testing :class:`~simbroker.brokers.alpaca.AlpacaBroker` (or any alpaca-py code)
without a network. REST is served by a threaded HTTP server and the stream by a
``websockets`` server, each on 127.0.0.1 port 0 in its own thread::

    with FakeAlpaca() as fake:
        fake.set_price("AAPL", 190.0)
        client = TradingClient(fake.key, fake.secret, url_override=fake.rest_url)
        ...
        fake.step()            # the market trades once at the current prices

What it serves: ``/v2/account``, ``/v2/positions``, ``/v2/orders`` (submit, list, get by
id and by client order id, cancel, replace with ``PATCH``; the order classes, trailing
stops and time-in-force rules of :mod:`~simbroker.testing.fake_alpaca._orders`),
``/v2/account/activities/FILL`` (paged),
``/v2/clock``, ``/v2/stocks/bars`` (from bars given with :meth:`FakeAlpaca.set_bars`),
and ``/stream`` with the authenticate/listen handshake and ``trade_updates`` events.
Orders get UUIDs and go through ``held``, ``new``, ``partially_filled``, ``filled``,
``pending_replace``, ``replaced``, ``canceled``, ``expired`` and ``rejected``. Every POST
and PATCH body is kept in :attr:`FakeAlpaca.sent` for wire-level assertions.

Fault injection, each counted in :attr:`FakeAlpaca.faults` by kind:

- :meth:`FakeAlpaca.fail_next`: HTTP 5xx (or any status) for the next requests.
- :meth:`FakeAlpaca.stall_next`: hold the answer of the next matching requests for some
  seconds (after carrying them out, or before); other connections are served meanwhile,
  as at the real service.
- :meth:`FakeAlpaca.rate_limit_next`: 429 with ``Retry-After`` and the
  ``X-RateLimit-Limit/Remaining/Reset`` headers Alpaca sends.
- :meth:`FakeAlpaca.lose_next_response`: the order is placed (or replaced), the answer
  is a 504.
- :meth:`FakeAlpaca.drop_stream`: close every stream connection; events while no client
  listens are lost, as on the real service.
- :meth:`FakeAlpaca.silence_stream`: the open connections go silent without closing (a
  half-open TCP connection): no events, no pongs to the client's pings.
- :meth:`FakeAlpaca.lose_next_events`: events never sent on a connection that stays up.
- ``duplicate_events`` (send each event twice), ``reorder_events`` (swap each pair of
  consecutive events), ``event_delay`` (seconds before an event is sent).
- :meth:`FakeAlpaca.restart`: both servers go away (every connection closed, new ones
  refused for ``downtime`` seconds) and come back on the same ports with the same
  account, orders and activities.
- ``partial_fills`` (split each fill into that many executions over successive steps),
  ``reject_symbols`` (refused at submission), ``reject_later_symbols`` (accepted, then
  rejected at the next step), ``max_page_size`` (smaller activity pages),
  ``quiet_sibling_cancels`` (an exit's fill cancels its sibling without an event),
  ``refuse_stream`` (stream logins fail).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from simbroker.bars import Bars
from simbroker.testing._market import BarReplay
from simbroker.testing.fake_alpaca._account import AccountBook
from simbroker.testing.fake_alpaca._orders import OPEN, ApiError, OrderBook, iso, num

__all__ = ["FakeAlpaca", "FakeAlpacaVenue", "stop_sdk_stream"]


class FakeAlpaca(AccountBook, OrderBook, BarReplay):
    """The fake service. Start with :meth:`start` (or ``with``), stop with :meth:`stop`.

    Parameters
    ----------
    key, secret
        The credentials it accepts (anything else gets 401); random by default.
    cash
        Starting cash.
    positions
        Starting positions ``{symbol: qty}``.
    multiplier
        Alpaca's account ``multiplier``: 1 (no leverage, no shorting), 2 (Reg T margin,
        Alpaca's default) or 4 (a pattern day trader). An order beyond the buying power
        it gives is refused with 403 (see :mod:`~simbroker.testing.fake_alpaca._account`);
        a replace (``PATCH``) is weighed against it too, the order it replaces set aside,
        and refused the same way, the old order working on unchanged.
    daytrade_count
        ``daytrade_count`` (day trades in the last five trading days).
    pdt_fields
        Send ``pattern_day_trader``, ``daytrade_count`` and ``daytrading_buying_power``
        (default True, the account as Alpaca sent it until 2026-07-06). ``False``: the
        account as Alpaca sends it since it removed them (FINRA's amended Rule 4210
        replaced the pattern-day-trader designation with intraday margin).
    hard_to_borrow
        Symbols not on Alpaca's easy-to-borrow list: a sell (or a replace) that would
        open or enlarge a short in one is refused with 403 (Alpaca's Trading API shorts
        easy-to-borrow assets only).
    """

    def __init__(self, key: str | None = None, secret: str | None = None, *,
                 cash: float = 100_000.0, positions: dict[str, float] | None = None,
                 multiplier: int = 2, daytrade_count: int = 0, pdt_fields: bool = True,
                 hard_to_borrow: Iterable[str] = ()):
        self.hard_to_borrow = set(hard_to_borrow)
        if multiplier not in (1, 2, 4):
            raise ValueError(f"multiplier must be 1, 2 or 4, got {multiplier!r}")
        self.multiplier = int(multiplier)
        self.daytrade_count = int(daytrade_count)
        self.pdt_fields = bool(pdt_fields)
        # Fresh made-up credentials unless the test names its own.
        self.key = key if key is not None else f"FAKE{secrets.token_hex(8).upper()}"
        self.secret = secret if secret is not None else secrets.token_urlsafe(24)
        self.cash = float(cash)
        self.positions: dict[str, float] = {k: float(v) for k, v in (positions or {}).items()}
        self.prices: dict[str, float] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.activities: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.sent: list[tuple[str, str, Any]] = []
        """``(method, path, JSON body)`` of every POST and PATCH (wire-level checks)."""
        self.partial_fills = 1
        self.duplicate_events = False
        self.event_delay = 0.0
        self.reject_symbols: set[str] = set()
        self.reject_later_symbols: set[str] = set()
        self.max_page_size = 100
        self.refuse_stream = False
        self.reorder_events = False
        self.quiet_sibling_cancels = False
        self.refuse_before_duplicate = False
        """Weigh the account's rules (one side at a time, buying power) before the
        duplicate ``client_order_id`` check, so a resend of a placed closing order is
        answered 403 (its own first send holds the position) instead of 422. Which
        check Alpaca makes first is not documented; the adapter must be safe either way."""
        self.stream_connections = 0
        self.faults: Counter[str] = Counter()
        """Faults injected so far, by kind."""
        self.clock = datetime(2024, 3, 4, 15, 0, tzinfo=timezone.utc)
        """The venue's time; :meth:`step` moves it a minute, each event a microsecond."""
        self._bars: Bars | None = None
        self._bars_visible = 0
        self._lock = threading.RLock()
        self._fail: list[tuple[int, str]] = []
        self._lose = 0
        self._lose_events = 0
        self._stalls: list[tuple[float, str, str, bool]] = []
        self._unstall = threading.Event()
        self._rate_limits: list[float] = []
        self._clients: set[Any] = set()
        self._conns: set[Any] = set()
        self._silent: set[Any] = set()
        self._held: bytes | None = None
        self._ports = (0, 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: ThreadingHTTPServer | None = None
        self._ws_server: Any = None
        self._threads: list[threading.Thread] = []
        self.rest_url = self.stream_url = self.data_url = ""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeAlpaca:
        """Start the REST and stream servers on loopback ports (the same ports again
        after :meth:`stop`)."""
        self._start_http(self._ports[0])
        self._start_ws(self._ports[1])
        return self

    def _start_http(self, port: int) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One buffered write per response, no Nagle: else each keep-alive request
            # waits ~40 ms for a delayed ACK between the headers and the body.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload, headers = fake._handle(method, self.path,
                                                        dict(self.headers), body)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if data:
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[Any, Any]:
                conn, addr = super().get_request()
                with fake._lock:
                    fake._conns.add(conn)
                return conn, addr

            def shutdown_request(self, request: Any) -> None:
                with fake._lock:
                    fake._conns.discard(request)
                super().shutdown_request(request)

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # a client that gave up on a stalled answer: nothing to report

        self._http = Server(("127.0.0.1", port), Handler)
        port = self._http.server_address[1]
        self.rest_url = self.data_url = f"http://127.0.0.1:{port}"
        self._ports = (port, self._ports[1])
        t = threading.Thread(target=self._http.serve_forever, name="fake-alpaca-rest",
                             daemon=True)
        t.start()
        self._threads.append(t)

    def _start_ws(self, port: int) -> None:
        ready = threading.Event()
        t2 = threading.Thread(target=self._run_ws, args=(ready, port),
                              name="fake-alpaca-stream", daemon=True)
        t2.start()
        self._threads.append(t2)
        if not ready.wait(10):
            raise RuntimeError("fake Alpaca stream server did not start")

    def _run_ws(self, ready: threading.Event, port: int) -> None:
        from websockets.asyncio.server import serve

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            async with serve(self._ws_handler, "127.0.0.1", port) as server:
                self._ws_server = server
                port_ = next(iter(server.sockets)).getsockname()[1]
                self.stream_url = f"ws://127.0.0.1:{port_}/stream"
                self._ports = (self._ports[0], port_)
                ready.set()
                await server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            asyncio.run(main())

    def stop(self) -> None:
        """Close every connection and stop both servers (the state is kept)."""
        self._unstall.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
            with self._lock:
                conns, self._conns = list(self._conns), set()
            for conn in conns:  # keep-alive connections die with the server
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        loop, server = self._loop, self._ws_server
        if loop is not None and server is not None and not loop.is_closed():
            async def close() -> None:
                for ws in list(self._silent):
                    ws.transport.abort()  # a silent peer would never finish a close
                self._silent.clear()
                server.close()
                await server.wait_closed()

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), loop).result(5)
        self._ws_server = None
        for t in self._threads:
            t.join(5)
        self._threads = []
        self._loop = None  # events while down reach nobody, as at the venue

    def restart(self, downtime: float = 0.0) -> None:
        """Go away and come back on the same ports, with the same state (a venue
        restart): every connection is closed, and refused for ``downtime`` seconds."""
        with self._lock:
            self.faults["restart"] += 1
        self.stop()
        if downtime:
            time.sleep(downtime)
        self.start()

    def __enter__(self) -> FakeAlpaca:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test controls
    def set_price(self, symbol: str, price: float) -> None:
        """Where ``symbol`` trades from the next :meth:`step` on."""
        with self._lock:
            self.prices[symbol] = float(price)

    def fail_next(self, status: int = 500, n: int = 1, message: str = "internal error",
                  method: str = "") -> None:
        """Answer the next ``n`` requests (of ``method``, if given) with ``status``."""
        with self._lock:
            self._fail.extend([(status, method.upper())] * n)
            self._fail_message = message

    def stall_next(self, seconds: float, n: int = 1, *, method: str = "", path: str = "",
                   before: bool = False) -> None:
        """Hold the answer to the next ``n`` requests (of ``method``, under ``path``) for
        ``seconds``: carried out at once and answered late, or (``before``) carried out
        only after the wait. Requests on other connections are served meanwhile."""
        with self._lock:
            self._unstall.clear()
            self._stalls.extend([(float(seconds), method.upper(), path, before)] * n)

    def release_stalls(self) -> None:
        """Answer every stalled request now, and stall no more (until the next
        :meth:`stall_next`)."""
        with self._lock:
            self._stalls.clear()
        self._unstall.set()

    def rate_limit_next(self, n: int = 1, retry_after: float = 1.0) -> None:
        """Refuse the next ``n`` requests with 429 (``Retry-After: retry_after``)."""
        with self._lock:
            self._rate_limits.extend([float(retry_after)] * n)

    def silence_stream(self) -> None:
        """Make every open stream connection silent but open: it stays connected, sends
        no event and answers no ping (it stops reading), like a half-open connection.
        Connections made afterwards are normal."""
        loop = self._loop
        if loop is None:
            return

        async def silence() -> None:
            for ws in list(self._clients):
                ws.transport.pause_reading()
                self._clients.discard(ws)
                self._silent.add(ws)

        asyncio.run_coroutine_threadsafe(silence(), loop).result(5)
        with self._lock:
            self.faults["silent_stream"] += 1

    def lose_next_events(self, n: int = 1) -> None:
        """Never send the next ``n`` stream events, the connection staying up (a
        dropped message; only REST then knows)."""
        with self._lock:
            self._lose_events += n

    def lose_next_response(self, n: int = 1) -> None:
        """Carry out the next ``n`` POSTs or PATCHes but answer them with 504 (a lost
        response)."""
        with self._lock:
            self._lose += n

    def drop_stream(self) -> None:
        """Close every trade_updates connection (the client reconnects)."""
        loop = self._loop
        if loop is None:
            return

        async def drop() -> None:
            for ws in list(self._clients):
                await ws.close()

        asyncio.run_coroutine_threadsafe(drop(), loop).result(5)
        with self._lock:
            self.faults["stream_drop"] += 1

    @property
    def listeners(self) -> int:
        """Stream connections that are authenticated and listening now."""
        return len(self._clients)

    def _tick(self) -> datetime:
        """The time of a new event: strictly after the previous one (caller holds the
        lock)."""
        self.clock += timedelta(microseconds=1)
        return self.clock

    # ------------------------------------------------------------------ stream
    async def _ws_handler(self, ws: Any) -> None:
        with self._lock:
            self.stream_connections += 1
        try:
            raw = await ws.recv()
            msg = json.loads(raw)
            data = msg.get("data") or {}
            key = data.get("key_id", msg.get("key"))
            secret = data.get("secret_key", msg.get("secret"))
            ok = key == self.key and secret == self.secret and not self.refuse_stream
            await ws.send(json.dumps({"stream": "authorization", "data": {
                "action": "authenticate", "status": "authorized" if ok else "unauthorized"}})
                .encode())
            if not ok:
                await ws.close()
                return
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("action") == "listen":
                    streams = list((msg.get("data") or {}).get("streams") or [])
                    if "trade_updates" in streams:
                        self._clients.add(ws)
                    else:
                        self._clients.discard(ws)
                    await ws.send(json.dumps({"stream": "listening",
                                              "data": {"streams": streams}}).encode())
        except Exception:
            pass
        finally:
            self._clients.discard(ws)
            self._silent.discard(ws)

    def _emit(self, data: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None or not loop.is_running() or self._ws_server is None:
            return
        if self._lose_events:
            self._lose_events -= 1
            self.faults["lost_event"] += 1
            return
        frame = json.dumps({"stream": "trade_updates", "data": data}).encode()
        copies = 2 if self.duplicate_events else 1
        delay = self.event_delay
        reorder = self.reorder_events
        if copies == 2:
            self.faults["duplicate_event"] += 1

        async def deliver(frames: list[bytes]) -> None:
            for ws in list(self._clients):
                for f in frames:
                    try:
                        await ws.send(f)
                    except Exception:
                        self._clients.discard(ws)

        async def flush_held() -> None:
            held, self._held = self._held, None
            if held is not None:
                await deliver([held] * copies)

        async def send() -> None:
            if delay:
                await asyncio.sleep(delay)
            if not reorder:
                await deliver([frame] * copies)
                return
            if self._held is None:
                self._held = frame  # sent after the next event, or alone soon
                asyncio.get_running_loop().call_later(
                    0.05, lambda: asyncio.ensure_future(flush_held()))
                return
            held, self._held = self._held, None
            with self._lock:
                self.faults["reordered_events"] += 1
            await deliver([frame] * copies + [held] * copies)

        coro = send()
        try:
            asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:  # the loop closed meanwhile: the venue is down
            coro.close()

    # ------------------------------------------------------------------ REST
    def _handle(self, method: str, raw_path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, Any, dict[str, str]]:
        url = urlparse(raw_path)
        path, query = url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}
        stall: tuple[float, str, str, bool] | None = None
        with self._lock:
            for i, spec in enumerate(self._stalls):
                if (not spec[1] or spec[1] == method) and path.startswith(spec[2]):
                    stall = self._stalls.pop(i)
                    self.faults["stalled_answer"] += 1
                    break
        if stall is not None and stall[3]:
            self._unstall.wait(stall[0])  # outside the lock: others are served
        result = self._handle_now(method, path, query, headers, body)
        if stall is not None and not stall[3]:
            self._unstall.wait(stall[0])
        return result

    def _handle_now(self, method: str, path: str, query: dict[str, str],
                    headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append((method, path))
            if method in ("POST", "PATCH"):
                with contextlib.suppress(ValueError):
                    self.sent.append((method, path, json.loads(body or b"{}")))
            try:
                if headers.get("APCA-API-KEY-ID") != self.key or \
                        headers.get("APCA-API-SECRET-KEY") != self.secret:
                    raise ApiError(401, 40110000, "request is not authorized")
                if self._rate_limits:
                    wait = self._rate_limits.pop(0)
                    self.faults["rate_limited"] += 1
                    reset = math.ceil(time.time() + wait)
                    return 429, {"code": 42910000, "message": "rate limit exceeded"}, {
                        "Retry-After": num(wait), "X-RateLimit-Limit": "200",
                        "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
                for i, (status, only) in enumerate(self._fail):
                    if not only or only == method:
                        del self._fail[i]
                        self.faults[f"http_{status}"] += 1
                        raise ApiError(status, status * 100000,
                                        getattr(self, "_fail_message", "error"))
                status, payload = self._route(method, path, query, body)
                if self._lose and method in ("POST", "PATCH"):
                    # The request took effect, but its answer is lost in transit.
                    self._lose -= 1
                    self.faults["lost_answer_504"] += 1
                    raise ApiError(504, 50400000, "gateway timeout")
                return status, payload, {}
            except ApiError as exc:
                return exc.status, {"code": exc.code, "message": exc.message}, {}

    def _route(self, method: str, path: str, query: dict[str, str],
               body: bytes) -> tuple[int, Any]:
        if path == "/v2/account" and method == "GET":
            return 200, self._account()
        if path == "/v2/clock":
            return 200, {"timestamp": iso(self.clock), "is_open": True,
                         "next_open": iso(self.clock + timedelta(days=1)),
                         "next_close": iso(self.clock + timedelta(hours=1))}
        if path == "/v2/positions" and method == "GET":
            return 200, [self._position(s, q) for s, q in sorted(self.positions.items())]
        if path == "/v2/orders" and method == "POST":
            return 200, self._submit(json.loads(body or b"{}"))
        if path == "/v2/orders" and method == "GET":
            return 200, self._list_orders(query)
        if path == "/v2/orders:by_client_order_id" and method == "GET":
            cid = query.get("client_order_id")
            for o in self.orders.values():
                if o["client_order_id"] == cid:
                    return 200, self._public(o)
            raise ApiError(404, 40410000, "order not found")
        if path.startswith("/v2/orders/"):
            oid = path.rsplit("/", 1)[1]
            found = self.orders.get(oid)
            if found is None:
                raise ApiError(404, 40410000, "order not found")
            if method == "GET":
                return 200, self._public(found)
            if method == "DELETE":
                self._cancel(oid)
                return 204, None
            if method == "PATCH":
                return 200, self._replace(oid, json.loads(body or b"{}"))
        if path in ("/v2/account/activities/FILL", "/v2/account/activities"):
            return 200, self._activities(query)
        if path == "/v2/stocks/bars" and method == "GET":
            return 200, self._stock_bars(query)
        raise ApiError(404, 40410000, f"no route {method} {path}")

    def _list_orders(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """``GET /v2/orders``: status open|closed|all (default open), after / until
        (submission time, exclusive), symbols, direction (default desc), limit (default
        50, at most 500), nested (false: every order on its own row, legs included;
        true: legs only under their parent's ``legs``, a group listed when any of its
        orders matches ``status``)."""
        status = query.get("status", "open")
        nested = query.get("nested", "false").lower() == "true"

        def match(o: dict[str, Any]) -> bool:
            return status == "all" or (status == "open") == (o["status"] in OPEN)

        if nested:
            rows = [o for o in self.orders.values() if o["_parent"] is None and (
                match(o) or any(match(self.orders[c]) for c in o["_legs"]))]
        else:
            rows = [o for o in self.orders.values() if match(o)]

        def when(x: str) -> datetime:
            return datetime.fromisoformat(x.replace("Z", "+00:00"))

        if query.get("after"):
            rows = [o for o in rows if when(o["submitted_at"]) > when(query["after"])]
        if query.get("until"):
            rows = [o for o in rows if when(o["submitted_at"]) < when(query["until"])]
        if query.get("symbols"):
            wanted = set(query["symbols"].split(","))
            rows = [o for o in rows if o["symbol"] in wanted]
        rows.sort(key=lambda o: o["submitted_at"], reverse=query.get("direction",
                                                                     "desc") == "desc")
        limit = min(int(query.get("limit", 50)), 500)
        return [self._public(o, nested) for o in rows][:limit]

    def _position(self, sym: str, qty: float) -> dict[str, Any]:
        px = self.prices.get(sym, 0.0)
        return {"asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, sym)), "symbol": sym,
                "exchange": "NASDAQ", "asset_class": "us_equity", "avg_entry_price": num(px),
                "qty": num(qty), "side": "long" if qty > 0 else "short",
                "cost_basis": num(qty * px), "market_value": num(qty * px),
                "current_price": num(px)}

    def _activities(self, query: dict[str, str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.activities
        after = query.get("after")
        if after:
            cut = datetime.fromisoformat(after.replace("Z", "+00:00"))
            rows = [a for a in rows if datetime.fromisoformat(
                a["transaction_time"].replace("Z", "+00:00")) > cut]
        if query.get("direction", "desc") == "desc":
            rows = rows[::-1]
        token = query.get("page_token")
        if token:
            ids = [a["id"] for a in rows]
            rows = rows[ids.index(token) + 1:] if token in ids else []
        return rows[: min(int(query.get("page_size", 100)), self.max_page_size)]

    def _stock_bars(self, query: dict[str, str]) -> dict[str, Any]:
        bars = self._bars
        out: dict[str, list[dict[str, Any]]] = {}
        if bars is None:
            return {"bars": out, "next_page_token": None}
        wanted = [s for s in query.get("symbols", "").split(",") if s]
        start = query.get("start")
        lo = 0
        if start:
            when = np.datetime64(datetime.fromisoformat(start.replace("Z", "+00:00"))
                                 .astimezone(timezone.utc).replace(tzinfo=None), "ns")
            lo = int(np.searchsorted(bars.timestamps, when))
        hi = self._bars_visible
        limit = int(query.get("limit") or 10_000)
        for sym in wanted:
            if sym not in bars:
                continue
            j = bars.symbol_index(sym)
            rows = []
            for t in range(lo, hi):
                if not math.isfinite(bars.close[t, j]):
                    continue
                ts = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(
                    microseconds=int(bars.ts_ns[t]) // 1000)
                rows.append({"t": iso(ts), "o": bars.open[t, j], "h": bars.high[t, j],
                             "l": bars.low[t, j], "c": bars.close[t, j],
                             "v": bars.volume[t, j], "n": 1, "vw": bars.close[t, j]})
            out[sym] = rows[:limit]
        return {"bars": out, "next_page_token": None}

    def orders_by_client_id(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(client_order_id, order) pairs, for assertions."""
        with self._lock:
            return iter([(o["client_order_id"], dict(o)) for o in self.orders.values()])


def stop_sdk_stream(fake: FakeAlpaca, stream: Any, thread: threading.Thread) -> None:
    """Stop alpaca-py's own ``TradingStream`` running against ``fake`` in ``thread``.

    ``stop()`` takes effect only once ``recv()`` returns, so the socket is closed from the
    stream's loop (the SDK keeps it in ``_loop``) and the fake drops its side too; the
    stream then ends in milliseconds instead of its 5 s receive timeout.
    """
    stream.stop()
    loop = getattr(stream, "_loop", None)
    if loop is not None and loop.is_running():
        asyncio.run_coroutine_threadsafe(stream.close(), loop).result(5)
    fake.drop_stream()
    thread.join(10)


class FakeAlpacaVenue:
    """A :class:`~simbroker.testing.checks.ConformanceVenue` over :class:`FakeAlpaca`.

    ``broker`` is an :class:`~simbroker.brokers.alpaca.AlpacaBroker` connected to a fresh
    fake; :meth:`step` trades once and returns when the broker has seen every fill.
    """

    def __init__(self, **broker_kwargs: Any):
        from simbroker.brokers.alpaca import AlpacaBroker

        self.fake = FakeAlpaca().start()
        self.broker = AlpacaBroker.for_fake(self.fake, **broker_kwargs)
        self.wait_listening()

    def wait_listening(self, timeout: float = 10.0) -> None:
        """Block until the broker's trade stream is subscribed."""
        deadline = time.monotonic() + timeout
        while self.fake.listeners < 1:
            if time.monotonic() > deadline:
                raise TimeoutError("the broker never subscribed to trade_updates")
            time.sleep(0.01)

    def set_price(self, symbol: str, price: float) -> None:
        """Where ``symbol`` trades from the next step on."""
        self.fake.set_price(symbol, price)

    def step(self) -> None:
        """Trade once; wait until the broker has seen the resulting fills."""
        from simbroker.brokers.alpaca import fill_id

        made = self.fake.step()
        self.broker.wait_for_fills({fill_id(a["order_id"], a["cum_qty"]) for a in made},
                                   timeout=10)

    def close(self) -> None:
        """Disconnect the broker and stop the fake."""
        self.broker.close()
        self.fake.stop()
