"""``simbroker live`` needs a price collar or an order notional limit; the examples have both."""

from __future__ import annotations

from pathlib import Path

import pytest

from simbroker.cli import _risk_is_set, main
from simbroker.config import load_broker_config

ROOT = Path(__file__).resolve().parents[1]

LIMITS = "  max_order_qty: 10\n  max_position: 100\n  max_daily_loss: 500\n"


@pytest.mark.parametrize(("extra", "refused"), [
    ("", True),
    ("  price_collar: 0.05\n", False),
    ("  max_order_notional: 5000\n", False),
    ("  max_position_notional: 5000\n", True),  # bounds the position, not a fat-finger price
])
def test_live_needs_a_price_collar_or_an_order_notional_limit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, refused: bool) -> None:
    config = tmp_path / "ibkr.yaml"
    config.write_text(f"host: 127.0.0.1\nport: 7496\ntrading_mode: live\nrisk:\n{LIMITS}{extra}",
                      encoding="utf-8")
    limits = load_broker_config("ibkr", path=config).risk
    why = _risk_is_set(limits)
    if not refused:
        assert why is None
        return
    assert why is not None
    assert "price_collar (or max_order_notional)" in why
    code = main(["live", "nothing:Here", "--broker", "ibkr", "--config", str(config),
                 "--confirm-live", "--trade-log", str(tmp_path / "t.jsonl")])
    err = capsys.readouterr().err
    assert code == 2
    assert "needs risk limits in the config: set price_collar (or max_order_notional)" in err
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.parametrize("broker", ["ibkr", "alpaca"])
def test_the_example_configs_pass_the_live_gate(broker: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_API_KEY", "PKTESTKEYVALUE")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "not-a-real-secret")
    cfg = load_broker_config(broker, path=ROOT / "CONFIG" / "brokers" / f"{broker}.example.yaml")
    assert _risk_is_set(cfg.risk) is None
    assert cfg.risk.price_collar is not None
