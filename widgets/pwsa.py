"""The PWSA dashboard: a missile-warning scenario tracked live, or the tracks fed through the API.

Served at ``/pwsa``; in a notebook, display ``PwsaViewer()``. Two sources, chosen in the sidebar:

* **live scenario** -- :func:`prism_kernels.pwsa.generate_scenario` (threats, other objects and
  a LEO constellation) tracked scan by scan by a :class:`~prism_kernels.pwsa.service.PwsaService`
  of the viewer's own (its own in-memory store and bus, so the scenario never mixes into the
  API's tracker), driven by *Play* / *Pause* / *Step* at the chosen speed.
* **API tracks** -- the runtime's ``PwsaService`` (:attr:`PwsaViewer.service`), i.e. what
  ``POST /api/v1/pwsa/track`` was sent; the view refreshes when the API's tracker processes a
  scan. The scenario's controls are hidden.

The map shows east/north in km: truth paths and current positions (live scenario) and the
tracks with their horizontal 2-sigma ellipses. At the map's scale (hundreds of km) a 2-sigma
ellipse of a few hundred metres would be a dot, so the ellipses are drawn magnified by a
stated factor (in the legend and the title); the zoom beside the map shows the top-ranked
track's ellipse at its true size, in metres, with the truth next to it. The table ranks the
tracks by risk (:meth:`PwsaService.prioritize`); the curve shows GOSPA against the truth over
time. Everything is computed by ``prism_kernels``, off the event loop (see
:class:`~widgets.base.DomainViewer`); this module only lays it out.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from prism_kernels.events import EventBus
from prism_kernels.pwsa.geometry import ellipse_outline
from prism_kernels.pwsa.metrics import gospa
from prism_kernels.pwsa.prioritize import STRATEGIES
from prism_kernels.pwsa.scenario import Scenario, generate_scenario
from prism_kernels.pwsa.service import PwsaService
from prism_kernels.pwsa.tracker import PREDICTORS
from prism_kernels.store import Store
from widgets.base import DomainViewer, Result, rerange, result_table

LIVE, API = "live scenario", "API tracks"
#: GOSPA cut-off (m): an estimate farther than this from every truth counts as false.
GOSPA_C = 2000.0
#: A magnified 2-sigma ellipse spans about this fraction of the map.
ELLIPSE_SHARE = 0.06
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
    "time_to_impact_s",
    "recommended_action",
]
RANK_TITLES = {
    "rank": "rank",
    "threat_id": "track",
    "threat_type": "class",
    "risk_score": "risk score (0–1)",
    "time_to_impact_s": "time to impact (s)",
    "recommended_action": "action",
}
#: The controls that define the live scenario (hidden while the API's tracks are shown).
SCENARIO_CONTROLS = ("n_threats", "n_other", "n_satellites", "n_scans", "seed", "predictor")
EAST = hv.Dimension("east_km", label="east", unit="km")
NORTH = hv.Dimension("north_km", label="north", unit="km")
TRUTH_COLS = ["east_km", "north_km", "type", "object", "altitude_km"]
TRACK_COLS = [
    "east_km",
    "north_km",
    "track_id",
    "threat_type",
    "speed_m_s",
    "altitude_km",
    "confidence",
    "status",
]
VDIMS = {
    "altitude_km": hv.Dimension("altitude_km", label="altitude", unit="km"),
    "speed_m_s": hv.Dimension("speed_m_s", label="speed", unit="m/s"),
    "confidence": hv.Dimension("confidence", label="confidence (0–1)"),
}


def magnification(semi_majors: list[float], span_m: float) -> float:
    """A 1-2-5 factor that makes the median 2-sigma ellipse about ``ELLIPSE_SHARE`` of the
    map's span (never below 1: small maps show true sizes)."""
    if not semi_majors or span_m <= 0:
        return 1.0
    want = ELLIPSE_SHARE * span_m / (2.0 * max(float(np.median(semi_majors)), 1e-9))
    if want <= 1.0:
        return 1.0
    exp = math.floor(math.log10(want))
    mant = want / 10**exp
    return float((1 if mant < 2 else 2 if mant < 5 else 5) * 10**exp)


def _frame(source: str, **parts: Any) -> dict[str, Any]:
    """What the map, the GOSPA curve and the summary show (empty unless ``parts`` say)."""
    return {
        "source": source,
        "paths": [],
        "truth": pd.DataFrame(columns=TRUTH_COLS),
        "truth_m": {},
        "tracks": [],
        "rows": pd.DataFrame(columns=TRACK_COLS),
        "candidates": pd.DataFrame(columns=["east_km", "north_km"]),
        "gospa": pd.DataFrame(columns=["time_s", "gospa_m"]),
        "summary": "",
        "at_end": False,
        **parts,
    }


@dataclass
class LiveRun:
    """One live scenario and the viewer's own tracker following it."""

    scenario: Scenario
    service: PwsaService
    k: int = 0
    gospa_rows: list[dict] = field(default_factory=list)

    @property
    def at_end(self) -> bool:
        return self.k >= len(self.scenario.times)

    def advance(self) -> bool:
        """Track one scan of the scenario; False at its end."""
        if self.at_end:
            return False
        t = float(self.scenario.times[self.k])
        sensors = {
            f"sat-{s.sat_id}": {"measurements": s.positions, "covariance": s.position_cov}
            for s in self.scenario.scans_at(self.k)
        }
        res = self.service.track_sensors(t, sensors)
        truth = [st[:3] for st in self.scenario.truth_at(t).values()]
        g = gospa([tr["position"] for tr in res["tracks"]], truth, GOSPA_C)
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
        The tracker's motion model (:func:`~prism_kernels.pwsa.tracker.build_tracker`).
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
    description = "Missile-warning scenario tracked live, threat ranking, API tracks"
    service_class = PwsaService
    probe = ("source", API)  # the summary line names the API tracker
    source_probe = ("source", API)
    outputs = (
        Result("scenario", depends=("restart", "warmup_scans", *SCENARIO_CONTROLS)),
        Result("frame", depends=("scenario", "source")),
        Result("ranking", depends=("frame", "strategy")),
        Result("zoom", depends=("ranking",)),
    )

    source = param.Selector(
        default=LIVE, objects=[LIVE, API], doc="What the map and the table show"
    )
    n_threats = param.Integer(default=5, bounds=(0, 40), doc="Threat objects in the scenario")
    n_other = param.Integer(default=3, bounds=(0, 40), doc="Aircraft, decoys and clutter")
    n_satellites = param.Integer(default=3, bounds=(1, 8), doc="Sensing satellites")
    n_scans = param.Integer(default=90, bounds=(10, 600), doc="Scenario length (scans, 1 s apart)")
    seed = param.Integer(default=0, bounds=(0, 100_000))
    predictor = param.Selector(default="cv", objects=list(PREDICTORS), doc="Tracker motion model")
    strategy = param.Selector(default="time_weighted_risk", objects=list(STRATEGIES))
    speed = param.Selector(default=2.0, objects=[0.5, 1.0, 2.0, 5.0, 10.0], label="Speed (scans/s)")
    playing = param.Boolean(default=False, label="▶ Play")
    step = param.Event(label="Step")
    restart = param.Event(label="New scenario")
    warmup_scans = param.Integer(default=5, bounds=(0, 50), precedence=-1)
    summary = param.String(default="", precedence=-1, doc="One line on what is shown")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._run_lock = threading.Lock()
        self._pending = 0  # scans to advance at the next frame computation (Step, Play)
        self._run: LiveRun | None = None
        self._api_seen = -1
        self._player: Any = None  # periodic callbacks, made when first needed
        self._follower: Any = None
        self.table = result_table(
            RANK_COLUMNS,
            height=260,
            titles=RANK_TITLES,
        )
        self._play_button = pn.widgets.Toggle.from_param(self.param.playing, color="primary")
        self._live_box = self._live_controls()
        self.refresh()
        if self.source == API:
            self._follow()

    # ------------------------------------------------------------------ state
    @property
    def live(self) -> PwsaService | None:
        """The viewer's own tracker of the live scenario."""
        return None if self._run is None else self._run.service

    @property
    def scenario(self) -> Scenario | None:
        return None if self._run is None else self._run.scenario

    @property
    def k(self) -> int:
        """Scans of the live scenario tracked so far."""
        return 0 if self._run is None else self._run.k

    @property
    def gospa_rows(self) -> list[dict]:
        return [] if self._run is None else self._run.gospa_rows

    def _shown(self) -> PwsaService | None:
        """The service the view shows (the viewer's own, or the API's)."""
        return self.live if self.source == LIVE else self.service

    # ------------------------------------------------------------------ results
    def compute_scenario(self) -> LiveRun:
        n = self.n_threats + self.n_other
        mix = {
            **{k: v * self.n_threats for k, v in THREAT_MIX.items()},
            **{k: v * self.n_other for k, v in OTHER_MIX.items()},
        }
        scenario = generate_scenario(
            n_targets=n,
            n_satellites=self.n_satellites,
            n_scans=self.n_scans,
            dt=1.0,
            seed=self.seed,
            mix=mix if n else None,
            frame_shape=None,
        )
        run = LiveRun(
            scenario,
            PwsaService(
                Store(":memory:"), EventBus(), tracker={"predictor": self.predictor}, persist=False
            ),
        )
        for _ in range(min(self.warmup_scans, self.n_scans)):
            run.advance()
        with self._run_lock:
            self._run, self._pending = run, 0
        return run

    def compute_frame(self) -> dict[str, Any]:
        """What the map, the GOSPA curve and the summary show now (advancing the live
        scenario by the scans that Step and Play asked for)."""
        with self._run_lock:
            run, steps, self._pending = self._run, self._pending, 0
            if run is not None and self.source == LIVE:
                for _ in range(steps):
                    if not run.advance():
                        break
                return self._live_frame(run)
        return self._api_frame()

    def _track_rows(
        self, svc: PwsaService, statuses: tuple[str, ...] = ("active",)
    ) -> tuple[list[dict], pd.DataFrame]:
        """The tracks of ``statuses`` and their map rows."""
        tracks = [t for t in svc.tracks(limit=1000, status="all") if t["status"] in statuses]
        rows = pd.DataFrame(
            [
                {
                    "east_km": t["position"][0] / 1e3,
                    "north_km": t["position"][1] / 1e3,
                    "track_id": t["track_id"],
                    "threat_type": t["threat_type"],
                    "speed_m_s": round(t["speed"], 1),
                    "altitude_km": round(t["position"][2] / 1e3, 2),
                    "confidence": round(t["confidence"], 3),
                    "status": t["status"],
                }
                for t in tracks
            ],
            columns=TRACK_COLS,
        )
        return tracks, rows

    def _live_frame(self, run: LiveRun) -> dict[str, Any]:
        t_now = float(run.scenario.times[max(run.k - 1, 0)])
        paths, points = [], []
        for o in run.scenario.objects:
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
                    "altitude_km": round(pos[-1, 2], 2),
                }
            )
        tracks, rows = self._track_rows(run.service)
        last = run.gospa_rows[-1] if run.gospa_rows else None
        summary = (
            f"Scan {run.k} of {len(run.scenario.times)}; {len(tracks)} active tracks for "
            f"{len(run.scenario.objects)} objects"
            + (
                f"; GOSPA {last['gospa_m']:.0f} m, latency {last['latency_ms']:.1f} ms."
                if last
                else "."
            )
        )
        return _frame(
            LIVE,
            paths=paths,
            truth=pd.DataFrame(points, columns=TRUTH_COLS),
            truth_m={p["object"]: np.array([p["east_km"], p["north_km"]]) * 1e3 for p in points},
            tracks=tracks,
            rows=rows,
            gospa=pd.DataFrame(run.gospa_rows, columns=["time_s", "gospa_m"]),
            summary=summary,
            at_end=run.at_end,
        )

    def _api_frame(self) -> dict[str, Any]:
        svc = self.service
        # Tentative tracks too: a client that has sent one scan sees what it started.
        tracks, rows = self._track_rows(svc, ("active", "tentative"))
        h = svc.health()
        lat = h["processing_latency_ms"]
        summary = (
            f"API tracker: {h['active_tracks']} active and {h['tentative_tracks']} tentative tracks, "
            f"{h['scans_processed']} scans "
            "processed" + (f", mean scan latency {lat:.1f} ms." if lat is not None else ".")
        )
        cand = np.asarray(svc.candidates(), dtype=float).reshape(-1, 3)[:, :2] / 1e3
        candidates = pd.DataFrame(cand, columns=["east_km", "north_km"])
        return _frame(API, tracks=tracks, rows=rows, candidates=candidates, summary=summary)

    def compute_ranking(self) -> pd.DataFrame:
        svc = self._shown()
        if svc is None:
            return pd.DataFrame(columns=RANK_COLUMNS)
        rep = svc.prioritize(strategy=self.strategy)
        df = pd.DataFrame(rep["prioritized_threats"])
        if df.empty:
            return pd.DataFrame(columns=RANK_COLUMNS)
        df = df.rename(columns={"time_to_impact": "time_to_impact_s"})
        df = df[RANK_COLUMNS].round({"risk_score": 3, "time_to_impact_s": 1})
        return df.astype(object).where(df.notna(), None)  # no impact: an empty cell, not NaN

    def compute_zoom(self) -> dict[str, Any] | None:
        """The top-ranked track at true scale (m, relative to its estimate), with the
        nearest truth object when the truth is known."""
        frame, ranking = self.value.get("frame"), self.value.get("ranking")
        if not frame or ranking is None or ranking.empty:
            return None
        by_id = {t["track_id"]: t for t in frame["tracks"]}
        tid = ranking.iloc[0]["threat_id"]
        if tid not in by_id:
            return None
        t = by_id[tid]
        c = np.asarray(t["position"][:2])
        truth = None
        if frame["truth_m"]:
            name, xy = min(frame["truth_m"].items(), key=lambda kv: np.linalg.norm(kv[1] - c))
            truth = {"object": name, "offset": xy - c}
        return {
            "track_id": tid,
            "outline": ellipse_outline([0.0, 0.0], t["ellipse"]),
            "ellipse": t["ellipse"],
            "truth": truth,
        }

    def after_refresh(self, names: list[str]) -> None:
        frame = self.value.get("frame")
        if "frame" in names and frame is not None:
            self.summary = frame["summary"]
            if frame["at_end"] and self.playing:
                self.playing = False
        if "ranking" in names and self.value.get("ranking") is not None:
            self.table.value = self.value["ranking"]

    # ------------------------------------------------------------------ controls
    def _advance_and_show(self, scans: int) -> None:
        with self._run_lock:
            self._pending += scans
        self.refresh(["frame", *self.stale(["frame"])])

    def _follow(self) -> None:
        """Poll the API's tracker every 2 s while the API source is shown."""
        if self._follower is None:
            self._follower = pn.state.add_periodic_callback(self._poll_api, period=2000, start=True)

    def _period(self) -> int:
        return max(50, int(1000 / float(self.speed)))

    def _tick(self) -> None:
        if self.source != LIVE or self._run is None or self._run.at_end:
            self.playing = False
            return
        self._advance_and_show(1)

    def _poll_api(self) -> None:
        if self.source != API:
            return
        svc = self.service
        seen = svc.scans_processed + svc.detections_processed
        if seen != self._api_seen:
            self._api_seen = seen
            self.refresh(["frame", *self.stale(["frame"])])

    @param.depends("playing", watch=True)
    def _play(self) -> None:
        self._play_button.name = "⏸ Pause" if self.playing else "▶ Play"
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
            self._advance_and_show(1)

    @param.depends("source", watch=True)
    def _source(self) -> None:
        self._api_seen = -1
        self._live_box.visible = self.source == LIVE
        if self.source == API:
            self.playing = False
            self._follow()

    # ------------------------------------------------------------------ views
    def _map(self, frame_version: int = 0) -> hv.Overlay:
        """Truth paths, 2-sigma ellipses (magnified, stated), track crosses and truth dots
        drawn last on top of them (a fixed set of layers, so the plot updates in place)."""
        frame = self.value.get("frame") or _frame(LIVE)
        paths = frame["paths"] or [
            {"east_km": [float("nan")], "north_km": [float("nan")], "type": "aircraft"}
        ]
        tracks = frame["tracks"]
        xy = [frame["rows"][["east_km", "north_km"]].to_numpy(dtype=float)]
        xy.append(frame["candidates"][["east_km", "north_km"]].to_numpy(dtype=float))
        if len(frame["truth"]):
            xy.append(frame["truth"][["east_km", "north_km"]].to_numpy(dtype=float))
        pts = np.concatenate(xy) if xy else np.zeros((0, 2))
        span_m = float(np.ptp(pts, axis=0).max()) * 1e3 if len(pts) > 1 else 0.0
        factor = magnification([t["ellipse"]["semi_major"] for t in tracks], max(span_m, 1e4))
        times = "" if factor == 1 else f" ×{factor:g}"
        ellipses = [
            ellipse_outline(t["position"][:2], t["ellipse"], scale=1e-3, magnify=factor)
            for t in tracks
        ] or [np.full((1, 2), np.nan)]
        truth_paths = hv.Path(paths, [EAST, NORTH], ["type"], label="truth paths").opts(
            color="type", cmap=TYPE_COLORS, alpha=0.45, line_width=1.5
        )
        ell = hv.Contours(ellipses, [EAST, NORTH], label=f"2σ ellipses{times}").opts(
            color="black", line_width=1.2, alpha=0.8
        )
        track_pts = hv.Points(
            frame["rows"], [EAST, NORTH], [VDIMS.get(c, c) for c in TRACK_COLS[2:]], label="tracks"
        ).opts(marker="x", size=16, color="black", line_width=1.5, alpha=0.8, tools=["hover"])
        truth_now = hv.Points(
            frame["truth"],
            [EAST, NORTH],
            [VDIMS.get(c, c) for c in TRUTH_COLS[2:]],
            label="truth now",
        ).opts(color="type", cmap=TYPE_COLORS, size=7, line_color="white", tools=["hover"])
        waiting = hv.Points(
            frame["candidates"], [EAST, NORTH], label="measurements awaiting a 2nd scan"
        ).opts(marker="circle", size=9, fill_alpha=0, line_color="#555555", line_width=1.5)
        title = (
            "Truth and tracks" if frame["source"] == LIVE else "Tracks fed through the API"
        ) + (f" (2σ ellipses magnified ×{factor:g})" if factor != 1 else " (2σ ellipses)")
        return rerange(truth_paths * ell * waiting * track_pts * truth_now).opts(
            hv.opts.Overlay(
                title=title,
                responsive=True,
                height=520,
                legend_position="right",
                padding=0.05,
            )
        )

    def _zoom(self, zoom_version: int = 0) -> hv.Overlay:
        """The top-ranked track's 2-sigma ellipse at true size (m), the truth beside it."""
        z = self.value.get("zoom")
        east = hv.Dimension("east_m", label="east of the track", unit="m")
        north = hv.Dimension("north_m", label="north of the track", unit="m")
        if z is None:
            outline, centre, truth, title = np.full((1, 2), np.nan), [], [], "No track to zoom on"
        else:
            outline, centre = z["outline"], [(0.0, 0.0)]
            truth = [] if z["truth"] is None else [tuple(z["truth"]["offset"])]
            e = z["ellipse"]
            title = (
                f"{z['track_id']} (rank 1) true size: 2σ "
                f"{e['semi_major']:.0f} × {e['semi_minor']:.0f} m"
            )
        return rerange(
            hv.Contours([outline], [east, north], label="2σ ellipse (true size)").opts(
                color="black", line_width=1.5
            )
            * hv.Points(centre, [east, north], label="track").opts(
                marker="x", size=16, color="black", line_width=1.5
            )
            * hv.Points(truth, [east, north], label="truth").opts(
                color="#d62728", size=8, line_color="white"
            )
        ).opts(
            hv.opts.Overlay(
                title=title,
                width=420,
                height=520,
                data_aspect=1,
                legend_position="bottom",
                padding=0.15,
            )
        )

    def _gospa(self, frame_version: int = 0) -> hv.Curve:
        frame = self.value.get("frame") or _frame(LIVE)
        title = (
            f"GOSPA against the truth (c = {GOSPA_C / 1e3:g} km, p = 2)"
            if frame["source"] == LIVE
            else "GOSPA needs the truth: shown for the live scenario"
        )
        return rerange(
            hv.Curve(
                frame["gospa"],
                hv.Dimension("time_s", label="time", unit="s"),
                hv.Dimension("gospa_m", label="GOSPA", unit="m"),
            ).opts(title=title, responsive=True, height=220, tools=["hover"])
        )

    def _live_controls(self) -> pn.Column:
        """Play / Pause, Step, New scenario and the scenario's controls (live source only)."""
        live = pn.Param(self, parameters=["speed", *SCENARIO_CONTROLS], show_name=False)
        buttons = pn.Row(
            self._play_button,
            pn.widgets.Button.from_param(self.param.step),
            pn.widgets.Button.from_param(self.param.restart),
        )
        return pn.Column(buttons, live, visible=self.source == LIVE)

    def sidebar(self) -> list:
        always = pn.Param(self, parameters=["source", "strategy"], show_name=False)
        return [always, self._live_box, pn.pane.Markdown(self.param.summary)]

    def main(self) -> list:
        frame = hv.streams.Params(self, ["frame_version"])
        zoom = hv.streams.Params(self, ["zoom_version"])
        return [
            pn.Row(
                pn.pane.HoloViews(rerange(hv.DynamicMap(self._map, streams=[frame]))),
                pn.pane.HoloViews(rerange(hv.DynamicMap(self._zoom, streams=[zoom])), width=420),
            ),
            pn.pane.Markdown("### Ranked threats"),
            self.table,
            pn.pane.HoloViews(rerange(hv.DynamicMap(self._gospa, streams=[frame]))),
        ]
