"""The PWSA dashboard: a missile-warning scenario tracked live, or the tracks fed through the API.

Served at ``/pwsa``; in a notebook, display ``PwsaViewer()``. Two sources, chosen in the sidebar:

* **live scenario** -- :func:`prism_kernels.pwsa.generate_scenario` (threats, other objects and
  a LEO constellation) tracked scan by scan by a :class:`~prism_kernels.pwsa.service.PwsaService`
  of the viewer's own (its own in-memory store and bus, so the scenario never mixes into the
  API's tracker), driven by *Play* / *Pause* / *Step* at the chosen speed.
* **API tracks** -- the runtime's ``PwsaService``, i.e. what ``POST /api/v1/pwsa/track`` was
  sent; the view refreshes when the API's tracker processes a scan.

The map shows east/north in km: truth paths and current positions (live scenario), tracks with
their 2-sigma horizontal uncertainty ellipses; the table ranks the tracks by risk
(:meth:`PwsaService.prioritize`); the curve shows GOSPA against the truth over time.
Everything is computed by ``prism_kernels``; this module only lays it out.
"""

from __future__ import annotations

import holoviews as hv
import pandas as pd
import panel as pn
import param

from prism_kernels.events import EventBus
from prism_kernels.pwsa.metrics import gospa
from prism_kernels.pwsa.prioritize import STRATEGIES
from prism_kernels.pwsa.scenario import generate_scenario
from prism_kernels.pwsa.service import PwsaService, ellipse_outline
from prism_kernels.runtime import get_runtime
from prism_kernels.store import Store
from widgets.base import DomainViewer

hv.extension("bokeh", logo=False)
pn.extension("tabulator", sizing_mode="stretch_width")

LIVE, API = "live scenario", "API tracks"
#: GOSPA cut-off (m): an estimate farther than this from every truth counts as false.
GOSPA_C = 2000.0
THREAT_MIX = {"ballistic_missile": 0.5, "hypersonic_glide_vehicle": 0.25, "cruise_missile": 0.25}
OTHER_MIX = {"aircraft": 0.5, "decoy": 0.3, "clutter": 0.2}
TYPE_COLORS = {
    "ballistic_missile": "#d62728",
    "hypersonic_glide_vehicle": "#9467bd",
    "cruise_missile": "#ff7f0e",
    "aircraft": "#1f77b4",
    "decoy": "#8c564b",
    "clutter": "#7f7f7f",
}
RANK_COLUMNS = [
    "rank",
    "threat_id",
    "threat_type",
    "risk_score",
    "time_to_impact",
    "recommended_action",
]


class PwsaViewer(DomainViewer):
    """Live multi-target tracking of a seeded scenario, or of the API's tracks.

    Parameters
    ----------
    source : {"live scenario", "API tracks"}
    n_threats, n_other, n_satellites, n_scans, seed :
        The scenario (:func:`~prism_kernels.pwsa.generate_scenario`): threat objects
        (ballistic, glide, cruise), other objects (aircraft, decoys, clutter), sensors, scans
        (1 s apart) and the seed.
    predictor : {"cv", "ballistic", "imm"}
        The tracker's motion model (:func:`~prism_kernels.pwsa.service.build_tracker`).
    strategy : str
        Prioritisation strategy of the ranked table.
    speed : float
        Scans per second while playing.
    warmup_scans : int
        Scans tracked when a scenario starts, so the first view already shows tracks.
    """

    title = param.String(default="PWSA tracking", precedence=-1)
    slug = "pwsa"
    order = 10
    description = (
        "Missile-warning scenario tracked live, threat ranking, API tracks"
    )
    probe = ("source", API)  # the browser test switches the source; the map title and status follow
    source = param.Selector(
        default=LIVE, objects=[LIVE, API], doc="What the map and the table show"
    )
    n_threats = param.Integer(default=5, bounds=(0, 40), doc="Threat objects in the scenario")
    n_other = param.Integer(default=3, bounds=(0, 40), doc="Aircraft, decoys and clutter")
    n_satellites = param.Integer(default=3, bounds=(1, 8), doc="Sensing satellites")
    n_scans = param.Integer(default=90, bounds=(10, 600), doc="Scenario length (scans, 1 s apart)")
    seed = param.Integer(default=0, bounds=(0, 100_000))
    predictor = param.Selector(
        default="cv", objects=["cv", "ballistic", "imm"], doc="Tracker motion model"
    )
    strategy = param.Selector(default="time_weighted_risk", objects=list(STRATEGIES))
    speed = param.Selector(default=2.0, objects=[0.5, 1.0, 2.0, 5.0, 10.0], doc="Scans per second")
    playing = param.Boolean(default=False, label="Play")
    step = param.Event(label="Step")
    restart = param.Event(label="New scenario")
    warmup_scans = param.Integer(default=5, bounds=(0, 50), precedence=-1)

    version = param.Integer(default=0, precedence=-1)
    status = param.String(default="", precedence=-1)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._api_seen = -1
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=RANK_COLUMNS),
            disabled=True,
            show_index=False,
            height=260,
            pagination=None,
        )
        self._new_scenario()
        self._player = None  # periodic callbacks, made when first needed (Play, API source)
        self._follower = None
        if self.source == API:
            self._follow()

    # ------------------------------------------------------------------ state
    def _new_scenario(self) -> None:
        n = self.n_threats + self.n_other
        mix = {
            **{k: v * self.n_threats for k, v in THREAT_MIX.items()},
            **{k: v * self.n_other for k, v in OTHER_MIX.items()},
        }
        self.scenario = generate_scenario(
            n_targets=n,
            n_satellites=self.n_satellites,
            n_scans=self.n_scans,
            dt=1.0,
            seed=self.seed,
            mix=mix if n else None,
            frame_shape=None,
        )
        self.live = PwsaService(
            Store(":memory:"), EventBus(), tracker={"predictor": self.predictor}, persist=False
        )
        self.k = 0
        self.gospa_rows: list[dict] = []
        for _ in range(min(self.warmup_scans, self.n_scans)):
            self._advance()
        self._refresh()

    def _advance(self) -> bool:
        """Track one scan of the live scenario; False at its end."""
        if self.k >= len(self.scenario.times):
            return False
        t = float(self.scenario.times[self.k])
        sensors = {
            f"sat-{s.sat_id}": {"measurements": s.positions, "covariance": s.position_cov}
            for s in self.scenario.scans_at(self.k)
        }
        res = self.live.track_sensors(t, sensors)
        truth = [st[:3] for st in self.scenario.truth_at(t).values()]
        est = [tr["position"] for tr in res["tracks"]]
        g = gospa(est, truth, GOSPA_C)
        self.gospa_rows.append(
            {
                "time_s": t,
                "gospa_m": g.gospa,
                "missed": g.n_missed,
                "false": g.n_false,
                "latency_ms": res["latency_ms"],
            }
        )
        self.k += 1
        return True

    def _refresh(self) -> None:
        if self.source == LIVE:
            h = self.live.health()
            last = self.gospa_rows[-1] if self.gospa_rows else None
            self.status = (
                f"Scan {self.k} of {len(self.scenario.times)}; {h['active_tracks']} active tracks for "
                f"{len(self.scenario.objects)} objects"
                + (
                    f"; GOSPA {last['gospa_m']:.0f} m, latency {last['latency_ms']:.1f} ms."
                    if last
                    else "."
                )
            )
        else:
            h = self.api_service.health()
            lat = h["processing_latency_ms"]
            self.status = (
                f"API tracker: {h['active_tracks']} active tracks, {h['scans_processed']} scans processed"
                + (f", mean latency {lat:.1f} ms." if lat is not None else ".")
            )
        self.table.value = self._ranking()
        self.version += 1

    @property
    def api_service(self) -> PwsaService:
        return get_runtime().service(PwsaService)

    @property
    def service(self) -> PwsaService:
        """The service the view shows (the viewer's own, or the API's)."""
        return self.live if self.source == LIVE else self.api_service

    # ------------------------------------------------------------------ controls
    def _follow(self) -> None:
        """Poll the API's tracker every 2 s while the API source is shown."""
        if self._follower is None:
            self._follower = pn.state.add_periodic_callback(self._poll_api, period=2000, start=True)

    def _period(self) -> int:
        return max(50, int(1000 / float(self.speed)))

    def _tick(self) -> None:
        if self.source != LIVE or not self._advance():
            self.playing = False
        self._refresh()

    def _poll_api(self) -> None:
        if self.source != API:
            return
        seen = self.api_service.scans_processed + self.api_service.detections_processed
        if seen != self._api_seen:
            self._api_seen = seen
            self._refresh()

    @param.depends("playing", watch=True)
    def _play(self) -> None:
        if self.playing:
            if self._player is None:
                self._player = pn.state.add_periodic_callback(
                    self._tick, period=self._period(), start=False
                )
            self._player.period = self._period()
            self._player.start()
        elif self._player is not None and self._player.running:
            self._player.stop()

    @param.depends("speed", watch=True)
    def _speed(self) -> None:
        if self._player is not None:
            self._player.period = self._period()

    @param.depends("step", watch=True)
    def _step(self) -> None:
        if self.source == LIVE:
            self._advance()
        self._refresh()

    @param.depends(
        "restart",
        "n_threats",
        "n_other",
        "n_satellites",
        "n_scans",
        "seed",
        "predictor",
        watch=True,
    )
    def _restart(self) -> None:
        self._new_scenario()

    @param.depends("source", "strategy", watch=True)
    def _source(self) -> None:
        self._api_seen = -1
        if self.source == API:
            self._follow()
        self._refresh()

    # ------------------------------------------------------------------ views
    def _tracks(self) -> list[dict]:
        return self.service.tracks(limit=1000, status="active")

    def _map(self, version: int = 0) -> hv.Overlay:
        """Truth paths and positions, tracks and their 2-sigma ellipses (a fixed set of four
        layers, so the plot updates its data in place while playing)."""
        paths, points = [], []
        if self.source == LIVE:
            t_now = float(self.scenario.times[max(self.k - 1, 0)])
            for o in self.scenario.objects:
                sel = o.times <= t_now + 1e-9
                if not sel.any():
                    continue
                pos = o.positions[sel] / 1e3
                paths.append({"east_km": pos[:, 0], "north_km": pos[:, 1], "type": o.object_type})
                points.append(
                    {
                        "east_km": pos[-1, 0],
                        "north_km": pos[-1, 1],
                        "type": o.object_type,
                        "object": o.object_id,
                        "altitude_km": pos[-1, 2],
                    }
                )
        tracks = self._tracks()
        rows = [
            {
                "east_km": t["position"][0] / 1e3,
                "north_km": t["position"][1] / 1e3,
                "track_id": t["track_id"],
                "threat_type": t["threat_type"],
                "speed_m_s": round(t["speed"], 1),
                "altitude_km": t["position"][2] / 1e3,
                "confidence": round(t["confidence"], 3),
            }
            for t in tracks
        ]
        ellipses = [ellipse_outline(t["position"][:2], t["ellipse"], scale=1e-3) for t in tracks]
        kdims = ["east_km", "north_km"]
        if not paths:  # an empty layer keeps its place in the overlay (and its colour mapping)
            paths = [{"east_km": [float("nan")], "north_km": [float("nan")], "type": "aircraft"}]
        truth_cols = [*kdims, "type", "object", "altitude_km"]
        track_cols = [*kdims, "track_id", "threat_type", "speed_m_s", "altitude_km", "confidence"]
        truth_paths = hv.Path(paths, kdims, ["type"], label="truth paths").opts(
            color="type", cmap=TYPE_COLORS, alpha=0.5, line_width=1.5
        )
        truth_now = hv.Points(
            pd.DataFrame(points, columns=truth_cols), kdims, truth_cols[2:], label="truth"
        ).opts(color="type", cmap=TYPE_COLORS, size=7, tools=["hover"])
        track_pts = hv.Points(
            pd.DataFrame(rows, columns=track_cols), kdims, track_cols[2:], label="tracks"
        ).opts(marker="x", size=12, color="black", line_width=2, tools=["hover"])
        track_ell = hv.Path(ellipses, kdims, label="2-sigma").opts(color="black", line_width=1)
        if self.source == LIVE or not rows:
            half = self.scenario.config.get("area_half_width", 500_000.0) / 1e3 * 1.1
            lim = {"xlim": (-half, half), "ylim": (-half, half)}
        else:
            lim = {"xlim": (None, None), "ylim": (None, None)}
        title = (
            "Truth and tracks (2-sigma ellipses)"
            if self.source == LIVE
            else "Tracks fed through the API"
        )
        return (truth_paths * truth_now * track_pts * track_ell).opts(
            hv.opts.Overlay(
                title=title,
                responsive=True,
                height=520,
                legend_position="right",
                xlabel="east (km)",
                ylabel="north (km)",
                **lim,
            )
        )

    def _gospa(self, version: int = 0) -> hv.Curve:
        df = pd.DataFrame(
            self.gospa_rows if self.source == LIVE else [], columns=["time_s", "gospa_m"]
        )
        title = (
            f"GOSPA against the truth (c = {GOSPA_C / 1e3:g} km, p = 2)"
            if self.source == LIVE
            else "GOSPA needs the truth: shown for the live scenario"
        )
        return hv.Curve(df, "time_s", ("gospa_m", "GOSPA (m)")).opts(
            title=title,
            responsive=True,
            height=220,
            tools=["hover"],
            xlabel="time (s)",
            framewise=True,
        )

    def _ranking(self) -> pd.DataFrame:
        rep = self.service.prioritize(strategy=self.strategy)
        df = pd.DataFrame(rep["prioritized_threats"])
        if df.empty:
            return pd.DataFrame(columns=RANK_COLUMNS)
        return df[RANK_COLUMNS].round({"risk_score": 3, "time_to_impact": 1})

    def sidebar(self) -> list:
        controls = pn.Param(
            self,
            parameters=[
                "source",
                "playing",
                "step",
                "speed",
                "n_threats",
                "n_other",
                "n_satellites",
                "n_scans",
                "seed",
                "predictor",
                "strategy",
                "restart",
            ],
            widgets={
                "playing": {"type": pn.widgets.Toggle},
                "step": {"type": pn.widgets.Button},
                "restart": {"type": pn.widgets.Button},
            },
            show_name=False,
        )
        return [controls, pn.pane.Markdown(self.param.status)]

    def main(self) -> list:
        stream = hv.streams.Params(self, ["version"])
        return [
            pn.pane.HoloViews(hv.DynamicMap(self._map, streams=[stream]).opts(framewise=True)),
            pn.pane.Markdown("### Ranked threats"),
            self.table,
            pn.pane.HoloViews(hv.DynamicMap(self._gospa, streams=[stream])),
        ]
