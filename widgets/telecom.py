"""The Telecom dashboard: a real backbone (Abilene 2005, GEANT 2012, or the network the REST
API manages) drawn on its coordinates with every link coloured by its utilisation, a day of
gravity-model traffic played hour by hour, the routing chosen (IGP shortest paths with ECMP,
or a traffic-engineering objective), one demand's paths highlighted, a failure picked from a
list with the re-routed network shown, and the N-1 ranking of the most critical elements.
Served at ``/telecom``; in a notebook, display ``TelecomViewer()``.

Every number comes from :class:`prism_kernels.telecom.service.TelecomService` (the runtime's
instance, the REST API's) and the telecom kernels; this module only lays results out. The
results and what they depend on (a control recomputes only what depends on it)::

    network  <- source
    day      <- network, peak_utilization, seed
    routing  <- day, hour, objective
    n1       <- day, hour
    failure  <- day, hour, failure
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from prism_kernels.errors import InvalidInput
from prism_kernels.telecom import failures as tel_failures
from prism_kernels.telecom import topology as tel_topology
from prism_kernels.telecom import traffic as tel_traffic
from prism_kernels.telecom.routing import link_utilization
from prism_kernels.telecom.service import TelecomService
from widgets.base import DomainViewer, Result, rerange, result_table

ABILENE = "Abilene (2005, shipped)"
GEANT = "GEANT (2012, shipped)"
MANAGED = "Managed network (REST API)"
SOURCES = {ABILENE: "abilene", GEANT: "geant", MANAGED: None}
IGP = "igp (shortest paths, ECMP)"
OBJECTIVES = [IGP, "balance_load", "minimize_latency", "maximize_throughput"]
NO_FAILURE = "none"
HOURS = np.arange(24)
RANK_COLUMNS = {
    "rank": "Rank",
    "id": "Scenario",
    "cut_volume": "Traffic cut (Gbps)",
    "demands_cut": "Demands cut",
    "max_link_utilization": "Worst link utilisation",
}


class TelecomViewer(DomainViewer):
    """Routing, utilisation, failures and the day's traffic on a real backbone.

    Parameters
    ----------
    source : the shipped Abilene or GEANT backbone, or the REST API's managed network.
    peak_utilization : the busiest link's utilisation under IGP routing at the day's busiest
        hour (the gravity traffic is scaled to it).
    seed : seed of the traffic's hourly noise.
    hour : the UTC hour shown (the player animates it).
    objective : IGP routing or a traffic-engineering objective.
    demand : the demand whose paths are highlighted.
    failure : a link or node failed; the map shows the re-routed network.
    threshold : utilisation at which a link counts as congested.
    """

    title = param.String(default="Telecom", precedence=-1)
    slug = "telecom"
    order = 40
    description = (
        "Abilene and GEANT backbones: utilisation, traffic engineering, failures (N-1) "
        "and a day of traffic"
    )
    service_class = TelecomService
    probe = ("objective", "balance_load")
    source_probe = ("source", GEANT)
    outputs = (
        Result("network", ("source",)),
        Result("day", ("network", "peak_utilization", "seed")),
        Result("routing", ("day", "hour", "objective")),
        Result("n1", ("day", "hour")),
        Result("failure_view", ("day", "hour", "failure")),
    )

    source = param.Selector(default=ABILENE, objects=list(SOURCES), label="Network")
    peak_utilization = param.Number(
        default=0.8, bounds=(0.05, 2.0), step=0.05, label="Busiest link at the peak hour (IGP)"
    )
    seed = param.Integer(default=0, bounds=(0, 100_000), label="Traffic noise seed")
    hour = param.Integer(default=20, bounds=(0, 23), label="Hour (UTC)")
    objective = param.Selector(default=IGP, objects=OBJECTIVES, label="Routing")
    demand = param.Selector(default=None, objects=[], label="Demand highlighted")
    failure = param.Selector(default=NO_FAILURE, objects=[NO_FAILURE], label="Failure")
    threshold = param.Number(
        default=0.8, bounds=(0.1, 0.99), step=0.05, label="Congestion threshold"
    )

    def __init__(self, service: TelecomService | None = None, **params: Any) -> None:
        self._syncing = False
        super().__init__(service=service, **params)
        self.ranking = result_table(
            RANK_COLUMNS.values(),
            height=260,
            formatters={
                RANK_COLUMNS["cut_volume"]: NumberFormatter(format="0.000"),
                RANK_COLUMNS["max_link_utilization"]: NumberFormatter(format="0.0%"),
            },
        )
        self.refresh()

    # ------------------------------------------------------------------ results

    def compute_network(self) -> dict[str, Any]:
        key = SOURCES[self.source]
        if key is None:
            topo, demands = self.service.managed()
        else:
            topo = tel_topology.load_backbone(key)
            M = tel_traffic.gravity_matrix(topo, 1.0)
            demands = tel_topology.demands_from_matrix(topo, M)
        if not np.all(np.isfinite(topo.lat)) or not np.all(np.isfinite(topo.lon)):
            raise InvalidInput("Network", "every node needs coordinates (lat, lon) to be drawn")
        return {"topo": topo, "demands": demands}

    def compute_day(self) -> dict[str, Any]:
        net = self.value["network"]
        topo, base = net["topo"], net["demands"]
        volumes = tel_traffic.seasonal_volumes(topo, base, HOURS, noise=0.1, seed=int(self.seed))
        peak = tel_traffic.peak_utilization(topo, base, volumes)
        scale = float(self.peak_utilization) / float(peak.max()) if peak.max() > 0 else 1.0
        return {"volumes": volumes * scale, "igp_peak": peak * scale}

    def _demands_now(self) -> tuple[Any, Any]:
        net = self.value["network"]
        vol = self.value["day"]["volumes"][int(self.hour)]
        return net["topo"], net["demands"].with_volume(vol)

    def compute_routing(self) -> dict[str, Any]:
        topo, demands = self._demands_now()
        if self.objective == IGP:
            out = self.service.route(topology=topo, demands=demands)
            out["objective"] = "igp"
            return out
        return self.service.optimize(
            topology=topo, demands=demands, objective=self.objective, save=False
        )

    def compute_n1(self) -> dict[str, Any]:
        topo, demands = self._demands_now()
        return self.service.failures(
            topology=topo, demands=demands, scope=("links", "nodes"), top=10
        )

    def compute_failure_view(self) -> dict[str, Any] | None:
        if self.failure in (None, NO_FAILURE):
            return None
        topo, demands = self._demands_now()
        kind, _, name = str(self.failure).partition(":")
        if name not in (topo.link_index if kind == "link" else topo.index):
            return None  # a failure of the previous network: the list is being refilled
        spec = {"links": [name]} if kind == "link" else {"nodes": [name]}
        sc = tel_failures.scenario(topo, {"id": self.failure, **spec})
        rep = tel_failures.what_if(topo, demands, [sc], keep_loads=True)
        load, util = link_utilization(topo, rep.loads[0])
        return {
            "scenario": sc,
            "utilization": util,
            "max_utilization": float(rep.max_utilization[0]),
            "cut": [demands.ids[d] for d in rep.cut[0]],
            "cut_volume": float(rep.cut_volume[0]),
            "rerouted": int(rep.rerouted[0]),
        }

    def after_refresh(self, names: list[str]) -> None:
        """New network: offer its demands and elements; new N-1: refill the ranking table."""
        if "network" in names and "network" in self.value:
            net = self.value["network"]
            topo, demands = net["topo"], net["demands"]
            order = np.argsort(-demands.volume, kind="stable")
            ids = [demands.ids[i] for i in order]
            fails = (
                [NO_FAILURE]
                + [f"link:{k}" for k in topo.link_ids]
                + [f"node:{v}" for v in topo.node_ids]
            )
            self._syncing = True
            try:
                self.param.demand.objects = ids
                self.param.failure.objects = fails
                if self.demand not in ids:
                    self.demand = ids[0] if ids else None
                if self.failure not in fails:
                    self.failure = NO_FAILURE
            finally:
                self._syncing = False
        if "n1" in names and "n1" in self.value:
            rows = self.value["n1"]["critical"]
            df = (
                pd.DataFrame(rows, columns=list(RANK_COLUMNS))
                if rows
                else pd.DataFrame(columns=list(RANK_COLUMNS))
            )
            self.ranking.value = df.rename(columns=RANK_COLUMNS)

    def _controls_changed(self, *events: param.parameterized.Event) -> None:
        if not self._syncing:
            super()._controls_changed(*events)

    # ------------------------------------------------------------------ views

    def _utilization(self) -> np.ndarray | None:
        r = self.value.get("routing")
        if r is None:
            return None
        return np.asarray([row["utilization"] for row in r["link_utilization"]])

    @param.depends("routing_version", "failure_view_version", "demand", "threshold")
    def summary(self) -> pn.pane.Markdown:
        net, r = self.value.get("network"), self.value.get("routing")
        if net is None or r is None:
            return pn.pane.Markdown("")
        topo = net["topo"]
        u = self._utilization()
        hot = int(np.sum(u >= self.threshold))
        lines = [
            f"**{topo.name}**: {topo.n} nodes, {topo.m} links; hour {int(self.hour):02d}:00 UTC, "
            f"{self._demands_now()[1].volume.sum():.2f} Gbps offered.",
            f"**Routing {r['objective']}**: busiest link at **{100 * u.max():.1f} %**, {hot} links "
            f"at or above {100 * self.threshold:.0f} %.",
        ]
        if r["objective"] != "igp":
            need = r["required_utilization"]
            lines.append(
                f"Least possible maximum utilisation {100 * need:.1f} %; the demands "
                f"{'fit' if r['fits'] else 'do not fit'}; {r['throughput']:.2f} of "
                f"{r['offered']:.2f} Gbps carried; mean latency "
                f"{r['mean_latency_ms'] or 0:.2f} ms."
            )
        fv = self.value.get("failure_view")
        if fv is not None:
            lines.append(
                f"**Failure {self.failure}** (re-routed by IGP): busiest surviving link "
                f"{100 * fv['max_utilization']:.1f} %, "
                f"{len(fv['cut'])} demands cut ({fv['cut_volume']:.3f} Gbps), {fv['rerouted']} re-routed."
            )
        return pn.pane.Markdown("\n\n".join(lines), sizing_mode="stretch_width")

    def map_plot(self, **_: Any) -> hv.Overlay:
        net = self.value.get("network")
        u = self._utilization()
        if net is None or u is None:
            return hv.Overlay([hv.Points([], label="nodes")])
        topo = net["topo"]
        fv = self.value.get("failure_view")
        failed = np.zeros(topo.m, dtype=bool)
        if fv is not None:
            u = fv["utilization"]
            failed[fv["scenario"].links] = True
        s, t = topo.link_src, topo.link_dst
        seg = pd.DataFrame(
            {
                "lon0": topo.lon[s],
                "lat0": topo.lat[s],
                "lon1": topo.lon[t],
                "lat1": topo.lat[t],
                "utilization": np.minimum(u, 1.5),
                "link": list(topo.link_ids),
                "capacity": topo.capacity,
            }
        )
        dims = [("lon0", "longitude (°)"), ("lat0", "latitude (°)"), "lon1", "lat1"]
        links = hv.Segments(
            seg[~failed], dims, ["utilization", "link", "capacity"], label="links (utilisation)"
        )
        links = links.opts(
            color="utilization",
            cmap="RdYlGn_r",
            clim=(0.0, 1.0),
            colorbar=True,
            line_width=4,
            tools=["hover"],
            clabel="utilisation (busier direction)",
        )
        layers = [links]
        if failed.any():
            layers.append(
                hv.Segments(seg[failed], dims, ["link"], label="failed").opts(
                    color="black", line_dash="dashed", line_width=3
                )
            )
        path = self._highlight(topo)
        if path is not None:
            layers.append(path)
        nodes = pd.DataFrame(
            {"lon": topo.lon, "lat": topo.lat, "node": list(topo.node_ids), "site": list(topo.site)}
        )
        layers.append(
            hv.Points(
                nodes,
                [("lon", "longitude (°)"), ("lat", "latitude (°)")],
                ["node", "site"],
                label="nodes",
            ).opts(size=9, color="navy", tools=["hover"])
        )
        layers.append(
            hv.Labels(nodes, ["lon", "lat"], "node").opts(
                text_font_size="8pt", text_baseline="bottom"
            )
        )
        return hv.Overlay(layers).opts(
            title="Link utilisation", height=480, legend_position="bottom", show_legend=True
        )

    def _highlight(self, topo: Any) -> hv.Path | None:
        r = self.value.get("routing")
        if r is None or not self.demand:
            return None
        paths = [row for row in r["routes"] if row["demand"] == self.demand]
        if not paths:
            return None
        idx = topo.index
        data = [
            {
                "lon": [topo.lon[idx[v]] for v in row["path"]],
                "lat": [topo.lat[idx[v]] for v in row["path"]],
            }
            for row in paths
        ]
        return hv.Path(data, ["lon", "lat"], label=f"paths of {self.demand}").opts(
            color="magenta", line_width=8, alpha=0.45
        )

    def day_plot(self, **_: Any) -> hv.Overlay:
        day = self.value.get("day")
        if day is None:
            return hv.Overlay([hv.Curve([], "hour (UTC)", "max link utilisation")])
        curve = hv.Curve(
            (HOURS, day["igp_peak"]),
            ("hour", "hour (UTC)"),
            ("mlu", "max link utilisation (IGP)"),
            label="busiest link, IGP routing",
        )
        now = hv.Scatter(
            ([int(self.hour)], [float(day["igp_peak"][int(self.hour)])]),
            ("hour", "hour (UTC)"),
            ("mlu", "max link utilisation (IGP)"),
            label="hour shown",
        ).opts(size=12, color="red")
        return (curve * now).opts(title="The day's traffic", height=260, legend_position="right")

    # ------------------------------------------------------------------ layout

    def sidebar(self) -> list:
        player = pn.widgets.Player(
            label="Play the day",
            start=0,
            end=23,
            value=int(self.hour),
            loop_policy="loop",
            interval=1500,
            show_loop_controls=False,
            sizing_mode="stretch_width",
        )
        player.link(self, value="hour")
        self.param.watch(lambda e: setattr(player, "value", int(e.new)), "hour")
        controls = pn.Param(
            self,
            parameters=[
                "source",
                "peak_utilization",
                "seed",
                "hour",
                "objective",
                "demand",
                "failure",
                "threshold",
            ],
            show_name=False,
        )
        return [controls, player]

    def main(self) -> list:
        def dmap(fn: Any, *deps: str) -> pn.pane.HoloViews:
            stream = hv.streams.Params(self, list(deps))
            return pn.pane.HoloViews(rerange(hv.DynamicMap(fn, streams=[stream])))

        return [
            self.summary,
            dmap(self.map_plot, "routing_version", "failure_view_version", "demand"),
            dmap(self.day_plot, "day_version", "hour"),
            pn.pane.Markdown(
                "### Most critical single failures (N-1 over links and nodes, this hour)"
            ),
            self.ranking,
        ]
