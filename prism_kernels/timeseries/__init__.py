"""Time series: batched forecasts with honest intervals, backtests, anomalies, change points,
volatility, and applied forecasts (traffic, markets, trajectories).

Series come as a batch ``y`` of shape ``(B, n)`` (the series as the batch axis) on any array
backend. Modules, one idea each:

- :mod:`~prism_kernels.timeseries.core`: the :class:`~prism_kernels.timeseries.core.Forecast`
  every forecaster returns and the shared input checks;
- :mod:`~prism_kernels.timeseries.arima`: state-space ARIMA/SARIMA with the exact Gaussian
  likelihood, fitted in lock-step over a batch, and the automatic order search;
- :mod:`~prism_kernels.timeseries.baselines`, :mod:`~prism_kernels.timeseries.ets`,
  :mod:`~prism_kernels.timeseries.theta`, :mod:`~prism_kernels.timeseries.recurrent`: naive,
  seasonal naive and drift; exponential smoothing; Theta; LSTM and GRU with conformal
  intervals;
- :mod:`~prism_kernels.timeseries.models`: every forecaster by name (``forecast``);
- :mod:`~prism_kernels.timeseries.metrics`, :mod:`~prism_kernels.timeseries.backtest`: MAE,
  RMSE, MAPE, sMAPE, MASE on held-out data; rolling-origin backtests as one batch;
- :mod:`~prism_kernels.timeseries.anomalies`, :mod:`~prism_kernels.timeseries.changepoints`:
  rolling, robust, residual and seasonal-decomposition scores; PELT and binary segmentation;
- :mod:`~prism_kernels.timeseries.volatility`, :mod:`~prism_kernels.timeseries.correlation`,
  :mod:`~prism_kernels.timeseries.market`: GARCH and GJR-GARCH, EWMA, constant and DCC
  correlations, per-symbol return and volatility forecasts;
- :mod:`~prism_kernels.timeseries.traffic`, :mod:`~prism_kernels.timeseries.trajectory`:
  utilisation forecasts with the probability of exceeding capacity; kinematic forecasts;
- :mod:`~prism_kernels.timeseries.datasets`, :mod:`~prism_kernels.timeseries.generators`:
  real series shipped by packages, and seeded processes with known parameters;
- :mod:`~prism_kernels.timeseries.service`: :class:`TimeseriesService`, the series store.

Submodules are imported where they are used (this package imports nothing on import, so the
server starts without loading a model it does not serve yet).
"""
