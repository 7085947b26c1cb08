"""Real series that ship with the installed packages: nothing is downloaded.

``load(name)`` returns a dict with ``name``, ``values`` (list of float), ``dates`` (ISO
``YYYY-MM-DD`` strings, the first day of each period), ``frequency`` (a pandas offset alias:
``"MS"`` month start, ``"QS"`` quarter start, ``"YS"`` year start), ``season_length``,
``units``, ``description`` and ``source`` (citation).

- ``airpassengers``: monthly international airline passengers 1949-1960 (thousands, 144
  values), Box & Jenkins (1976) Series G, shipped in this package as ``airpassengers.json``.
- ``co2``: Mauna Loa atmospheric CO2 (ppm), statsmodels' weekly series 1958-03-29 to
  2001-12-29 (2,284 weeks, 59 missing); the gaps are filled by linear interpolation in time
  and the weeks averaged into calendar months (526 monthly means, 1958-03 to 2001-12).
- ``sunspots``: yearly mean sunspot numbers 1700-2008 (statsmodels).
- ``nile``: annual Nile flow at Aswan 1871-1970 (10^8 m^3, statsmodels).
- ``macrodata_realgdp``, ``macrodata_realcons``, ``macrodata_cpi``, ``macrodata_unemp``,
  ``macrodata_tbilrate``: US quarterly macro series 1959Q1-2009Q3 (statsmodels ``macrodata``).

statsmodels and pandas are imported when a statsmodels series is loaded, not at import time.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from prism_kernels.errors import InvalidInput

_MACRO = {
    "realgdp": ("Real gross domestic product", "billions of chained 2005 US dollars"),
    "realcons": ("Real personal consumption expenditures", "billions of chained 2005 US dollars"),
    "cpi": ("Consumer price index, end of quarter", "index, 1982-84 = 100"),
    "unemp": ("Unemployment rate", "percent"),
    "tbilrate": ("3-month Treasury bill rate, quarterly average", "percent"),
}
_MACRO_SOURCE = (
    "statsmodels.datasets.macrodata: US Federal Reserve Bank of St. Louis (FRED) and the "
    "Bureau of Labor Statistics, via the statsmodels project (public domain)."
)

DATASETS: dict[str, str] = {
    "airpassengers": "International airline passengers, monthly totals 1949-1960 (thousands)",
    "co2": "Mauna Loa atmospheric CO2, monthly means 1958-2001 (ppm), from weekly data",
    "sunspots": "Yearly mean sunspot numbers 1700-2008",
    "nile": "Annual flow of the Nile at Aswan 1871-1970 (10^8 m^3)",
    **{
        f"macrodata_{k}": f"US {v[0].lower()}, quarterly 1959-2009 ({v[1]})"
        for k, v in _MACRO.items()
    },
}


def _month_starts(year: int, month: int, count: int, step: int = 1) -> list[str]:
    out = []
    for i in range(count):
        m = month - 1 + i * step
        out.append(f"{year + m // 12:04d}-{m % 12 + 1:02d}-01")
    return out


def _airpassengers() -> dict[str, Any]:
    doc = json.loads(
        resources.files("prism_kernels.timeseries").joinpath("airpassengers.json").read_text()
    )
    values = [float(v) for v in doc["values"]]
    year, month = (int(p) for p in doc["start"].split("-"))
    return {
        "values": values,
        "dates": _month_starts(year, month, len(values)),
        "frequency": doc["frequency"],
        "season_length": int(doc["season_length"]),
        "units": doc["units"],
        "description": doc["title"],
        "source": doc["source"],
    }


def _co2() -> dict[str, Any]:
    from statsmodels.datasets import co2  # heavy: only when asked for

    weekly = co2.load_pandas().data["co2"]
    filled = weekly.interpolate(method="time")
    monthly = filled.resample("MS").mean()
    return {
        "values": [float(v) for v in monthly.to_numpy()],
        "dates": [d.strftime("%Y-%m-%d") for d in monthly.index],
        "frequency": "MS",
        "season_length": 12,
        "units": "ppm (parts per million by volume)",
        "description": (
            "Atmospheric CO2 at Mauna Loa, Hawaii: monthly means of statsmodels' weekly series "
            f"({len(weekly)} weeks, {int(weekly.isna().sum())} missing, filled by linear "
            "interpolation in time before averaging)."
        ),
        "source": (
            "Keeling, C. D. and Whorf, T. P., Scripps Institution of Oceanography (SIO), "
            "Atmospheric CO2 records from sites in the SIO air sampling network; via "
            "statsmodels.datasets.co2."
        ),
    }


def _sunspots() -> dict[str, Any]:
    from statsmodels.datasets import sunspots

    d = sunspots.load_pandas().data
    years = [int(y) for y in d["YEAR"]]
    return {
        "values": [float(v) for v in d["SUNACTIVITY"]],
        "dates": [f"{y:04d}-01-01" for y in years],
        "frequency": "YS",
        "season_length": 1,
        "units": "sunspot number (yearly mean)",
        "description": (
            "Yearly mean sunspot numbers 1700-2008 (a quasi-periodic cycle of about 11 years, "
            "not a fixed season)."
        ),
        "source": (
            "Sunspot data from the Solar Influences Data Analysis Center (SIDC), Royal "
            "Observatory of Belgium; via statsmodels.datasets.sunspots."
        ),
    }


def _nile() -> dict[str, Any]:
    from statsmodels.datasets import nile

    d = nile.load_pandas().data
    return {
        "values": [float(v) for v in d["volume"]],
        "dates": [f"{int(y):04d}-01-01" for y in d["year"]],
        "frequency": "YS",
        "season_length": 1,
        "units": "10^8 cubic metres per year",
        "description": (
            "Annual flow of the river Nile at Aswan, 1871-1970 (a level shift near 1898)."
        ),
        "source": (
            "Cobb, G. W. (1978) The problem of the Nile: conditional solution to a changepoint "
            "problem. Biometrika 65, 243-251; Durbin, J. and Koopman, S. J. (2001) Time Series "
            "Analysis by State Space Methods; via statsmodels.datasets.nile."
        ),
    }


def _macro(column: str) -> dict[str, Any]:
    from statsmodels.datasets import macrodata

    d = macrodata.load_pandas().data
    y0, q0 = int(d["year"].iloc[0]), int(d["quarter"].iloc[0])
    title, units = _MACRO[column]
    return {
        "values": [float(v) for v in d[column]],
        "dates": _month_starts(y0, 3 * (q0 - 1) + 1, len(d), step=3),
        "frequency": "QS",
        "season_length": 4,
        "units": units,
        "description": f"US {title.lower()}, quarterly 1959Q1-2009Q3 (statsmodels macrodata).",
        "source": _MACRO_SOURCE,
    }


def load(name: str) -> dict[str, Any]:
    """Load a shipped real series by name (one of :data:`DATASETS`), without any download.

    Parameters
    ----------
    name : str
        Case-insensitive.

    Returns
    -------
    dict
        ``name``, ``values`` (list of float), ``dates`` (ISO strings, one per value),
        ``frequency``, ``season_length``, ``units``, ``description``, ``source``.

    Raises
    ------
    InvalidInput
        ``name`` unknown (field ``"name"``, the message lists the choices).
    """
    key = str(name).lower()
    if key not in DATASETS:
        raise InvalidInput("name", f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if key == "airpassengers":
        out = _airpassengers()
    elif key == "co2":
        out = _co2()
    elif key == "sunspots":
        out = _sunspots()
    elif key == "nile":
        out = _nile()
    else:
        out = _macro(key.removeprefix("macrodata_"))
    return {"name": key, **out}
