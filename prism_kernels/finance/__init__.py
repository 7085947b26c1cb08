"""Finance: estimators, batched portfolio optimisation, risk, backtesting, the portfolio book."""

# estimators, the batched optimiser, risk, backtesting, market data and the portfolio book
from prism_kernels.finance import estimators as estimators  # noqa: E402
from prism_kernels.finance.backtest import BacktestResult as BacktestResult  # noqa: E402
from prism_kernels.finance.backtest import backtest as backtest  # noqa: E402
from prism_kernels.finance.backtest import optimizer_strategy as optimizer_strategy  # noqa: E402
from prism_kernels.finance.constraints import PortfolioConstraints as PortfolioConstraints  # noqa: E402
from prism_kernels.finance.hrp import hrp_weights as hrp_weights  # noqa: E402
from prism_kernels.finance.market import Market as Market  # noqa: E402
from prism_kernels.finance.market import generate_market as generate_market  # noqa: E402
from prism_kernels.finance.optimize import FrontierResult as FrontierResult  # noqa: E402
from prism_kernels.finance.optimize import PortfolioResult as PortfolioResult  # noqa: E402
from prism_kernels.finance.optimize import efficient_frontier as efficient_frontier  # noqa: E402
from prism_kernels.finance.optimize import normalize_objective as normalize_objective  # noqa: E402
from prism_kernels.finance.optimize import optimize as optimize  # noqa: E402
from prism_kernels.finance.risk import component_var as component_var  # noqa: E402
from prism_kernels.finance.risk import historical_var_cvar as historical_var_cvar  # noqa: E402
from prism_kernels.finance.risk import max_drawdown as max_drawdown  # noqa: E402
from prism_kernels.finance.risk import monte_carlo_var as monte_carlo_var  # noqa: E402
from prism_kernels.finance.risk import parametric_var_cvar as parametric_var_cvar  # noqa: E402
from prism_kernels.finance.risk import risk_report as risk_report  # noqa: E402
from prism_kernels.finance.service import FinanceService as FinanceService  # noqa: E402
