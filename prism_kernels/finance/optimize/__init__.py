"""Batched portfolio optimisation: a backend-generic QP solver and the portfolio objectives."""

from prism_kernels.finance.optimize.portfolio import (
    OBJECTIVES,
    FrontierResult,
    PortfolioResult,
    efficient_frontier,
    min_cvar,
    normalize_objective,
    optimize,
    risk_parity_weights,
    validate_inputs,
)
from prism_kernels.finance.optimize.qp import QPSolution, solve_qp

__all__ = [
    "OBJECTIVES",
    "FrontierResult",
    "PortfolioResult",
    "QPSolution",
    "efficient_frontier",
    "min_cvar",
    "normalize_objective",
    "optimize",
    "risk_parity_weights",
    "solve_qp",
    "validate_inputs",
]
