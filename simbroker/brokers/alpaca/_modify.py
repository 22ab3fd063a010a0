"""Canceling and replacing Alpaca orders (``DELETE`` and ``PATCH`` of an order), a
replace checked first and a lost answer resolved from Alpaca's orders.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from typing import NoReturn

from simbroker._venue_sides import QTY_AVAILABLE, from_alpaca
from simbroker.brokers.alpaca._base import log
from simbroker.brokers.alpaca._records import _is_uuid
from simbroker.brokers.alpaca._submit import Submitting, _is_server_error
from simbroker.brokers.alpaca.account import INSUFFICIENT
from simbroker.brokers.alpaca.rest import request_sent
from simbroker.brokers.alpaca.translate import replace_request
from simbroker.errors import (
    BrokerAPIError,
    BrokerConnectionError,
    BrokerRateLimited,
    InvalidOrder,
    OrderRejected,
    OrderStatusUnknown,
    ReplaceRejected,
    UnknownOrder,
)
from simbroker.types import OrderInfo, OrderStatus, OrderType

__all__ = ["Modifying"]


def _alpaca_message(exc: Exception) -> str:
    """Alpaca's own words in an error from :mod:`~simbroker.brokers.alpaca.rest`."""
    text = str(exc)
    return text.split(": ", 2)[-1] if ": " in text else text


class Modifying(Submitting):
    """Cancel and replace of :class:`~simbroker.brokers.alpaca.AlpacaBroker`."""

    def cancel_order(self, order_id: str) -> OrderInfo:
        """Cancel an open order; a final order is returned unchanged (idempotent).

        As at Alpaca: canceling an unfilled bracket/OTO parent cancels its held legs, and
        canceling one order of an OCO pair or one exit of a bracket cancels its sibling.
        """
        if not _is_uuid(order_id):
            raise UnknownOrder(order_id)
        for _ in range(3):  # a replace may move the order to a new Alpaca id meanwhile
            current = self.orders.current_id(order_id)
            # 422: not cancelable (final, or replaced meanwhile)
            with contextlib.suppress(InvalidOrder):
                self.rest.request("DELETE", f"/orders/{current}", operation="cancel_order",
                                  order_id=order_id)
            info = self._refresh(order_id)
            if self.orders.current_id(order_id) == current:
                return info
        return info

    def replace_order(self, order_id: str, *, qty: float | None = None,
                      limit_price: float | None = None, stop_price: float | None = None,
                      trail_amount: float | None = None, trail_percent: float | None = None,
                      tif: str | None = None) -> OrderInfo:
        """Change an open order with Alpaca's replace (``PATCH /v2/orders/{id}``).

        The returned order keeps ``order_id``; underneath, Alpaca made a new order that
        ``replaces`` the old one (which is now ``replaced``). ``qty`` is the order's new
        total: the replacement is sent for what is left of it after the fills so far
        (Alpaca takes whole shares here); once something filled, that remaining qty is
        sent even when ``qty`` is not given, because Alpaca would otherwise give the
        replacement the whole original qty (alpacahq/Alpaca-API issue 165) and trade too
        much. Only the fields given change.

        Raises :class:`~simbroker.errors.ReplaceRejected` (nothing changed) when the order
        is no longer open (a replace racing a fill fails, as Alpaca answers 422), or the
        change is one Alpaca refuses: a ``qty`` not above the filled quantity or not a
        whole number, a price the order type does not take, ``trail_amount`` on a
        percent trail (or the reverse), a tif the order may not have; or, with Alpaca's
        403, one side at a time (a sell raised beyond the shares available: the reason
        the paper broker with ``venue="alpaca"`` gives, its
        :class:`~simbroker.errors.PositionConflict` the cause), or a replacement beyond
        the buying power (weighed with the old order set aside; the cause an
        :class:`~simbroker.errors.InsufficientBuyingPower`, as at submission), or a
        short Alpaca does not take (raising a short sale in an asset off its
        easy-to-borrow list: :class:`~simbroker.errors.HardToBorrow`; an account not
        allowed to short: :class:`~simbroker.errors.ShortingNotAllowed`); the old
        order keeps working.
        :class:`~simbroker.errors.OrderStatusUnknown` when the answer was lost and Alpaca
        could not be asked in time; :meth:`get_order` then shows which version is live
        (there is always exactly one), and repeating the same replace is safe.
        """
        if not _is_uuid(order_id):
            raise UnknownOrder(order_id)
        known = self.orders.get(order_id)
        info = known if known is not None else self._refresh(order_id)
        oid = info["order_id"]
        self._check_replace(info, qty=qty, limit_price=limit_price, stop_price=stop_price,
                            trail_amount=trail_amount, trail_percent=trail_percent, tif=tif)
        for attempt in range(2):
            current = self.orders.current_id(oid)
            info = self.orders.get(oid) or info
            # Always send what is left once something filled: without a qty Alpaca gives
            # the replacement the old order's whole qty (alpacahq/Alpaca-API issue 165).
            total = qty if qty is not None else info["qty"]
            left = round(total - info["filled_qty"]) if qty is not None or \
                info["filled_qty"] > 0 else None
            if left is not None and left <= 0:
                raise ReplaceRejected(oid, f"qty {qty:g} leaves nothing to trade after "
                                      f"{info['filled_qty']:g} filled", field="qty",
                                      status=info["status"], symbol=info["symbol"])
            cid = f"sb-{uuid.uuid4().hex}"
            trail = trail_amount if trail_amount is not None else trail_percent
            body = replace_request(qty=left, limit_price=limit_price, stop_price=stop_price,
                                   trail=trail, tif=tif, client_order_id=cid)
            try:
                raw = self.rest.request("PATCH", f"/orders/{current}", body=body,
                                        operation="replace_order", order_id=oid,
                                        symbol=info["symbol"], client_order_id=cid)
            except InvalidOrder as exc:  # 422: not replaceable now, or a refused change
                fresh = self._refresh(oid)
                if self.orders.current_id(oid) != current and attempt == 0 and \
                        OrderStatus(fresh["status"]).is_open:
                    continue  # replaced meanwhile (an earlier, lost answer): apply to it
                raise ReplaceRejected(
                    oid, f"Alpaca answered 422 ({_alpaca_message(exc)}); the order is "
                    f"{fresh['status']}", status=fresh["status"], symbol=fresh["symbol"],
                    client_order_id=fresh["client_order_id"]) from None
            except OrderRejected as exc:  # 403: refused, nothing changed at Alpaca
                self._replace_refused(info, left, exc, qty=qty, limit_price=limit_price,
                                      stop_price=stop_price)
            except BrokerRateLimited:
                raise
            except (BrokerConnectionError, BrokerAPIError) as exc:
                if isinstance(exc, BrokerAPIError) and not _is_server_error(exc):
                    raise
                return self._after_lost_replace(oid, cid, exc)
            new = self._remember(raw)
            self._log_replaced(new, qty=qty, limit_price=limit_price, stop_price=stop_price,
                               trail_amount=trail_amount, trail_percent=trail_percent,
                               tif=tif, venue_id=str(raw["id"]))
            return new
        raise AssertionError("unreachable")  # pragma: no cover

    def _replace_refused(self, info: OrderInfo, left: float | None, exc: OrderRejected, *,
                         qty: float | None = None, limit_price: float | None = None,
                         stop_price: float | None = None) -> NoReturn:
        """Raise the :class:`~simbroker.errors.ReplaceRejected` for Alpaca's 403 refusing the
        replace of ``info`` by an order of ``left`` (``None``: the old qty) with the
        changes given (``qty``, ``limit_price``, ``stop_price``).

        Insufficient buying power (Alpaca weighs the replacement with the old order set
        aside: "the account's buying power is reduced by the larger of the two orders")
        has the :class:`~simbroker.errors.InsufficientBuyingPower` a submission gets as
        its cause, with the figures read after the refusal. One side at a time (a sell
        raised beyond the shares available) gives the paper broker's reason, its
        :class:`~simbroker.errors.PositionConflict` as the cause (with the position read
        after the refusal, when Alpaca answers in time). Either way the order stays as
        it was and keeps working, neither lost nor unknown. A short Alpaca refuses gets
        the cause a submission gets (:func:`~simbroker.brokers.alpaca.account.refusal`);
        another 403 none."""
        oid, sym = info["order_id"], info["symbol"]
        if INSUFFICIENT in str(exc).lower():
            kept = info["limit_price"] if info["limit_price"] is not None \
                else info["stop_price"]
            price = limit_price if limit_price is not None else \
                stop_price if stop_price is not None else kept
            want = info["qty"] - info["filled_qty"] if left is None else float(left)
            cause = self._refusal_of(exc, symbol=sym, side=info["side"], qty=want,
                                     price=price, client_order_id=info["client_order_id"],
                                     replacing=self.orders.get(oid) or info)
            field = "qty" if qty is not None else "limit_price" \
                if limit_price is not None else "stop_price" if stop_price is not None \
                else None
            raise ReplaceRejected(oid, cause.reason, field=field, status=info["status"],
                                  symbol=sym, client_order_id=info["client_order_id"]
                                  ) from cause
        qty = info["qty"] if left is None else float(left)
        position = None
        if QTY_AVAILABLE in str(exc).lower():
            try:
                position = self.get_positions().get(sym, 0.0)
            except Exception:  # the refusal stands; only the position is unknown
                log.info("Alpaca: no position for the refused replace of %s", oid)
        conflict: OrderRejected | None = from_alpaca(
            str(exc), symbol=sym, side=info["side"], qty=qty, position=position,
            client_order_id=info["client_order_id"])
        if conflict is None:  # a short refused (hard to borrow, no shorting): as submitted
            conflict = self._refusal_of(exc, symbol=sym, side=info["side"], qty=qty,
                                        price=None, client_order_id=info["client_order_id"],
                                        replacing=self.orders.get(oid) or info)
        if conflict is exc:
            raise ReplaceRejected(oid, f"Alpaca answered 403 ({_alpaca_message(exc)})",
                                  status=info["status"], symbol=sym,
                                  client_order_id=info["client_order_id"]) from None
        raise ReplaceRejected(oid, conflict.reason, field="qty", status=info["status"],
                              symbol=sym, client_order_id=info["client_order_id"]) from conflict

    def _check_replace(self, info: OrderInfo, *, qty: float | None,
                       limit_price: float | None, stop_price: float | None,
                       trail_amount: float | None, trail_percent: float | None,
                       tif: str | None) -> None:
        """Refuse locally the replaces Alpaca would refuse (nothing is sent)."""
        oid, kind, sym = info["order_id"], info["order_type"], info["symbol"]

        def bad(field: str, why: str) -> ReplaceRejected:
            return ReplaceRejected(oid, why, field=field, status=info["status"], symbol=sym,
                                   client_order_id=info["client_order_id"])

        if not OrderStatus(info["status"]).is_open:
            raise ReplaceRejected(oid, f"it is {info['status']}", status=info["status"],
                                  symbol=sym, client_order_id=info["client_order_id"])
        given = {"qty": qty, "limit_price": limit_price, "stop_price": stop_price,
                 "trail_amount": trail_amount, "trail_percent": trail_percent, "tif": tif}
        if all(v is None for v in given.values()):
            raise bad("qty", "nothing to change (give qty, a price, a trail or tif)")
        for name in ("qty", "limit_price", "stop_price", "trail_amount", "trail_percent"):
            v = given[name]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                                  or not math.isfinite(v) or v <= 0):
                raise bad(name, f"{name} must be a finite number > 0, got {v!r}")
        if limit_price is not None and kind not in ("limit", "stop_limit"):
            raise bad("limit_price", f"a {kind} order takes no limit_price")
        if stop_price is not None and kind not in ("stop", "stop_limit"):
            raise bad("stop_price", f"a {kind} order takes no stop_price")
        if kind != OrderType.TRAILING_STOP.value:
            for name in ("trail_amount", "trail_percent"):
                if given[name] is not None:
                    raise bad(name, f"a {kind} order takes no {name}")
        else:
            if trail_amount is not None and trail_percent is not None:
                raise bad("trail_percent", "give one of trail_amount and trail_percent")
            if trail_amount is not None and info["trail_amount"] is None:
                raise bad("trail_amount", "it trails by percent: Alpaca changes only the "
                                          "trail it has (give trail_percent)")
            if trail_percent is not None and info["trail_percent"] is None:
                raise bad("trail_percent", "it trails by an amount: Alpaca changes only "
                                           "the trail it has (give trail_amount)")
            if trail_percent is not None and trail_percent >= 100:
                raise bad("trail_percent", f"trail_percent must be below 100, got "
                                           f"{trail_percent:g}")
        if qty is None and info["filled_qty"] > 0 and \
                info["qty"] - info["filled_qty"] != int(info["qty"] - info["filled_qty"]):
            raise bad("qty", f"Alpaca replaces whole shares only, and "
                             f"{info['qty'] - info['filled_qty']:g} are left to trade")
        if qty is not None:
            if qty <= info["filled_qty"]:
                raise bad("qty", f"qty {qty:g} is not above the {info['filled_qty']:g} "
                                 f"already filled")
            if qty - info["filled_qty"] != int(qty - info["filled_qty"]):
                raise bad("qty", f"Alpaca replaces whole shares only (qty {qty:g} leaves "
                                 f"{qty - info['filled_qty']:g} to trade)")
        if tif is not None:
            if tif not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
                raise bad("tif", f"unknown tif {tif!r}")
            if (info["order_class"] != "simple" or kind == "trailing_stop") and \
                    tif not in ("day", "gtc"):
                raise bad("tif", f"a {info['order_class']} {kind} order must stay day or "
                                 f"gtc at Alpaca")
            if tif in ("opg", "cls") and kind not in ("market", "limit"):
                raise bad("tif", f"tif {tif!r} takes market and limit orders only")

    def _after_lost_replace(self, oid: str, cid: str, exc: Exception) -> OrderInfo:
        """The replace's answer never came (or was a 5xx): find which version is live."""
        if not request_sent(exc):
            raise exc  # nothing left this machine: nothing changed
        try:
            found = self._lookup(cid)  # the replacement, under the id this call gave it
            if found is None:
                self._refresh(oid)  # and the order as it is now
        except (BrokerConnectionError, BrokerAPIError):
            found, resolved = None, False
        else:
            resolved = True
        if found is not None:
            log.info("replace of %s confirmed by Alpaca after a lost answer", oid)
            return found
        if resolved and not isinstance(exc, BrokerConnectionError):
            raise exc  # Alpaca answered with an error and made no replacement
        self._wake.set()
        raise OrderStatusUnknown(
            f"replace of order {oid} was sent but the answer was lost ({exc}); get_order"
            f"({oid!r}) shows which version is live (exactly one is), and repeating the "
            f"same replace is safe", client_order_id=cid) from None
