"""Request bodies the original API's clients sent (reference sections 7 and 8), shared by the
finance API and request-model tests."""

# the original notebook 01 payload (reference section 8)
NB01 = {
    "assets": [
        {"symbol": "AAPL", "expected_return": 0.12, "volatility": 0.25, "current_price": 150.0},
        {"symbol": "GOOGL", "expected_return": 0.15, "volatility": 0.30, "current_price": 2800.0},
        {"symbol": "MSFT", "expected_return": 0.13, "volatility": 0.22, "current_price": 380.0},
    ],
    "constraints": {"max_position_size": 0.5, "min_position_size": 0.1, "max_total_risk": 0.20},
    "objective": "maximize_sharpe",
}

# the Python client README's assess_risk (reference section 7); TSLA has no shipped history
README_RISK = {
    "portfolio_id": "portfolio_001",
    "positions": [
        {"symbol": "AAPL", "quantity": 100, "entry_price": 145.0, "current_price": 150.0},
        {"symbol": "TSLA", "quantity": 50, "entry_price": 200.0, "current_price": 190.0},
    ],
    "risk_metrics": ["var", "cvar", "max_drawdown", "beta"],
}
