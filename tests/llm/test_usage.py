"""Usage ledger: exact totals, costs from the price table, budgets, no key in any output."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.llm.usage import BudgetExceeded, Price, UsageLedger, key_id

PRICES = {"gpt-4o": (0.0025, 0.01), "claude": {"input_per_1k": 0.003, "output_per_1k": 0.015}}
SECRET = "sk-live-THIS-IS-A-SECRET-KEY-0123456789"


def _ledger(**kw):
    t = [0.0]

    def clock():
        t[0] += 1.0
        return t[0]

    return UsageLedger(PRICES, clock=clock, **kw)


def test_totals_add_up_exactly_to_reported_tokens(rng):
    led = _ledger()
    keys = [key_id(SECRET), key_id("another-key"), "anonymous"]
    models = ["gpt-4o", "claude", "local-free"]
    rows = []
    for _ in range(500):
        m, k = models[rng.integers(0, 3)], keys[rng.integers(0, 3)]
        pt, ct = int(rng.integers(0, 5000)), int(rng.integers(0, 2000))
        led.record(m, pt, ct, k)
        rows.append((m, k, pt, ct))
    tot = led.totals()
    assert tot["prompt_tokens"] == sum(r[2] for r in rows)
    assert tot["completion_tokens"] == sum(r[3] for r in rows)
    assert tot["requests"] == 500
    for group in (led.by_model(), led.by_key()):
        for f in ("prompt_tokens", "completion_tokens", "total_tokens", "cost_nanousd", "requests"):
            assert sum(g[f] for g in group.values()) == tot[f]
    # cost: exact rational reference, each row rounded to the nano-dollar once
    ref = 0
    for m, _, pt, ct in rows:
        if m in PRICES:
            p = PRICES[m]
            pin, pout = (p["input_per_1k"], p["output_per_1k"]) if isinstance(p, dict) else p
            exact = (
                Fraction(pt) * Fraction(str(pin)) / 1000 + Fraction(ct) * Fraction(str(pout)) / 1000
            )
            ref_row = exact * 10**9
            got = led.cost_nanousd(m, pt, ct)
            assert abs(got - ref_row) <= Fraction(1, 2) + Fraction(1, 10**6)
            ref += got
    assert tot["cost_nanousd"] == ref
    assert tot["cost_usd"] == pytest.approx(ref / 1e9)
    assert (
        led.by_model()["local-free"]["unpriced_requests"]
        == led.by_model()["local-free"]["requests"]
    )
    assert led.by_model()["local-free"]["cost_nanousd"] == 0


def test_one_row_closed_form():
    led = _ledger()
    row = led.record("gpt-4o", 1000, 500, "k")
    assert row.cost_usd == pytest.approx(0.0025 + 0.005)
    assert row.total_tokens == 1500
    assert Price(0.5, 1.5).nanos(2, 2) == 4_000_000  # 0.001 + 0.003 USD


def test_budgets():
    k = key_id(SECRET)
    led = _ledger(budgets={k: 0.01}, default_budget_usd=1.0)
    led.check(k)
    led.record("gpt-4o", 2000, 0, k)  # 0.005
    led.check(k)
    led.record("gpt-4o", 2000, 600, k)  # +0.011: 0.016 in all, past the budget, still recorded
    with pytest.raises(BudgetExceeded) as e:
        led.check(k)
    assert e.value.spent_usd == pytest.approx(0.016) and e.value.budget_usd == 0.01
    assert e.value.key_id == k
    assert led.by_key()[k]["remaining_usd"] == 0.0
    other = key_id("other")
    led.check(other)  # default budget, nothing spent
    assert led.budget_of(other) == 1.0
    zero = UsageLedger(default_budget_usd=0.0)
    with pytest.raises(BudgetExceeded):
        zero.check("anonymous")
    assert UsageLedger().budget_of("x") is None
    UsageLedger().check("x")  # unlimited


def test_no_key_anywhere():
    k = key_id(SECRET)
    assert SECRET not in k and len(k) == 16 and k == key_id(SECRET)
    assert key_id(None) == "anonymous" and key_id("a") != key_id("b")
    led = _ledger(budgets={k: 0.0})
    led.record("claude", 10, 10, k, request_id="r1")
    with pytest.raises(BudgetExceeded) as e:
        led.check(k)
    outputs = [
        str(e.value),
        repr(e.value),
        json.dumps(led.records()),
        json.dumps(led.summary()),
        repr(led.records()),
    ]
    for text in outputs:
        assert SECRET not in text and SECRET[8:30] not in text


def test_records_round_trip(rng):
    led = _ledger(default_budget_usd=5.0)
    for i in range(50):
        led.record(
            ["gpt-4o", "claude"][i % 2],
            int(rng.integers(0, 900)),
            int(rng.integers(0, 300)),
            f"k{i % 4}",
        )
    rec = json.loads(json.dumps(led.records()))
    back = UsageLedger.from_records(rec, prices=PRICES, default_budget_usd=5.0)
    assert back.summary() == led.summary()
    assert back.records() == led.records()
    with pytest.raises(InvalidInput) as e:
        UsageLedger.from_records([{"model": "m"}])
    assert e.value.field == "records.0"
    with pytest.raises(InvalidInput) as e:
        UsageLedger.from_records([{**rec[0], "prompt_tokens": -1}])
    assert e.value.field == "records.0.prompt_tokens"


def test_bad_input():
    led = _ledger()
    for args, field in [
        (("gpt-4o", -1, 0), "prompt_tokens"),
        (("gpt-4o", 1.5, 0), "prompt_tokens"),
        (("gpt-4o", True, 0), "prompt_tokens"),
        (("gpt-4o", 0, None), "completion_tokens"),
        (("", 0, 0), "model"),
    ]:
        with pytest.raises(InvalidInput) as e:
            led.record(*args)
        assert e.value.field == field
    with pytest.raises(InvalidInput) as e:
        led.record("m", 1, 1, key="")
    assert e.value.field == "key"
    for prices in (
        {"m": (float("nan"), 1)},
        {"m": (-1, 1)},
        {"m": (1,)},
        {"m": "cheap"},
        {"m": {"input": 1}},
    ):
        with pytest.raises(InvalidInput) as e:
            UsageLedger(prices)
        assert e.value.field == "prices.m"
    with pytest.raises(InvalidInput) as e:
        UsageLedger(budgets={"k": -1})
    assert e.value.field == "budgets.k"
    with pytest.raises(InvalidInput) as e:
        UsageLedger(default_budget_usd=float("inf"))
    assert e.value.field == "budget"
    assert led.totals()["requests"] == 0 and led.totals()["cost_usd"] == 0.0
