"""The Pixels dashboard: one IR frame with its hotspots, segmentation, entropy map, topology
and the classification of each hotspot. Served at ``/pixels``; in a notebook, display
``PixelsViewer()``.

Three sources, chosen in the sidebar:

* **generated** -- a seeded :func:`prism_kernels.pixels.thermal_scene` (its true target
  positions are drawn as white circles);
* **uploaded** -- a ``.npy`` array or a PNG (read through Pillow, greyscale) from the file
  picker;
* **API archive** -- a frame that ``/api/v1/pixels/...`` stored in the runtime's
  :class:`~prism_kernels.pixels.service.PixelsService` (frames up to the archive's pixel cap).

Generated and uploaded frames are analysed by a :class:`PixelsService` of the viewer's own (an
in-memory store), so browsing never fills the API's archive. The threshold slider moves the
level at which the Betti numbers are read, on the persistence diagram and the Betti curves.
Everything is computed by ``prism_kernels``; this module only lays it out.
"""

from __future__ import annotations

import io

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.pixels import topology
from prism_kernels.pixels.frames import validate_frame
from prism_kernels.pixels.processing import estimate_background
from prism_kernels.pixels.scene import thermal_scene
from prism_kernels.pixels.service import PixelsService
from prism_kernels.runtime import get_runtime
from prism_kernels.store import Store
from widgets.base import DomainViewer

hv.extension("bokeh", logo=False)
pn.extension("tabulator", sizing_mode="stretch_width")

GENERATED, UPLOADED, ARCHIVE = "generated", "uploaded", "API archive"
RESIDUAL, RAW = "background-subtracted", "raw frame"
#: Background window of the topology input (pixels; the detector's default).
BACKGROUND_SIZE = 31
SEGMENT_METHODS = ["otsu", "multi_otsu", "adaptive", "adaptive_mean", "watershed"]
CLASS_COLORS = {
    "missile_plume": "#d62728",
    "aircraft": "#1f77b4",
    "flare_decoy": "#ff7f0e",
    "clutter": "#7f7f7f",
}
#: Largest frame the dashboard analyses (pixels); bigger uploads are refused with a message.
MAX_PIXELS = 1024 * 1024
#: Most persistent pairs drawn on the persistence diagram.
MAX_DIAGRAM_POINTS = 3000
#: Points of the Betti curves.
BETTI_POINTS = 200
TABLE_COLUMNS = ["hotspot_id", "x", "y", "class", "confidence", "accepted"]
PLOT_HEIGHT = 360


def read_upload(filename: str, data: bytes) -> np.ndarray:
    """A frame from uploaded bytes: ``.npy`` (a 2-D numeric array) or an image (greyscale)."""
    name = (filename or "").lower()
    if name.endswith(".npy"):
        try:
            a = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InvalidInput("file", f"not a readable .npy array ({exc})") from exc
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            img = Image.open(io.BytesIO(data))
            img.load()
        except (UnidentifiedImageError, OSError) as exc:
            raise InvalidInput("file", f"not a readable image ({exc})") from exc
        if img.mode not in ("L", "I", "I;16", "I;16B", "F"):
            img = img.convert("L")
        a = np.asarray(img)
    a = validate_frame(a, "file")
    if a.size > MAX_PIXELS:
        raise InvalidInput(
            "file", f"{a.shape[1]}x{a.shape[0]} is over the dashboard's {MAX_PIXELS} pixels"
        )
    return a


class PixelsViewer(DomainViewer):
    """One IR frame analysed by the pixel kernels.

    Parameters
    ----------
    source : {"generated", "uploaded", "API archive"}
    size, n_targets, snr, seed :
        The generated scene (side in pixels, number of targets, peak SNR, seed).
    k_sigma : float
        Hotspot detection threshold in robust noise sigmas.
    segmentation_method : str
        Method of the segmentation overlay (``adaptive``: the local mean plus ``k_sigma`` noise
        sigmas, like the detector; the global methods also split the background).
    entropy_window : int
        Side of the local-entropy window (pixels; a disk of that diameter).
    topology_input : {"background-subtracted", "raw frame"}
        What the persistence diagram and Betti curves describe. Background-subtracted (the
        detector's residual), the components that persist are the targets; on the raw frame the
        background's own hills and the noise dominate.
    level : float
        Betti threshold as a fraction of that input's range (0 = minimum, 1 = maximum).
    """

    title = param.String(default="IR pixels", precedence=-1)
    slug = "pixels"
    order = 30
    description = (
        "Hotspots, segmentation, entropy map, persistence diagram and Betti curves, hotspot classes"
    )
    #: The control the browser test changes (see :class:`widgets.base.DomainViewer`).
    probe = ("size", 128)
    source = param.Selector(
        default=GENERATED, objects=[GENERATED, UPLOADED, ARCHIVE], doc="Which frame"
    )
    size = param.Selector(
        default=256, objects=[128, 256, 384, 512], doc="Generated frame side (pixels)"
    )
    n_targets = param.Integer(default=6, bounds=(0, 20), doc="Targets in the generated scene")
    snr = param.Number(default=25.0, bounds=(3.0, 100.0), step=1.0, doc="Peak SNR of the targets")
    seed = param.Integer(default=0, bounds=(0, 100_000))
    archive_frame = param.Selector(
        default=None, objects=[], allow_None=True, doc="A frame the API stored"
    )
    refresh_archive = param.Event(label="Refresh archive list")
    k_sigma = param.Number(
        default=6.0, bounds=(3.0, 20.0), step=0.5, doc="Detection threshold (sigmas)"
    )
    segmentation_method = param.Selector(default="adaptive", objects=SEGMENT_METHODS)
    show_segmentation = param.Boolean(default=True, doc="Draw the segmentation overlay")
    entropy_window = param.Integer(
        default=7, bounds=(3, 31), step=2, doc="Entropy window side (pixels)"
    )
    topology_input = param.Selector(default=RESIDUAL, objects=[RESIDUAL, RAW], label="Topology of")
    level = param.Number(
        default=0.4, bounds=(0.0, 1.0), step=0.01, label="Betti threshold (fraction of range)"
    )

    frame = param.Array(precedence=-1)
    version = param.Integer(default=0, precedence=-1)  # a new frame (every view)
    overlay_version = param.Integer(default=0, precedence=-1)  # detection or segmentation
    entropy_version = param.Integer(default=0, precedence=-1)
    topology_version = param.Integer(default=0, precedence=-1)
    status = param.String(default="", precedence=-1)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.own = PixelsService(Store(":memory:"), None, max_frames=4)
        self.truth = None
        self._label = ""
        self.upload = pn.widgets.FileInput(accept=".npy,.png,.tif,.tiff,.jpg,.jpeg", multiple=False)
        self.upload.param.watch(self._on_upload, "value")
        self._uploaded: np.ndarray | None = None
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=TABLE_COLUMNS),
            disabled=True,
            show_index=False,
            height=240,
            pagination=None,
        )
        self.det: dict = {}
        self.seg: dict = {}
        self.ent: dict = {}
        self.dgm = np.empty((0, 3))
        self.cls: dict = {}
        self._refresh_archive()
        self._load()

    # ------------------------------------------------------------------ frames
    @property
    def api_service(self) -> PixelsService:
        return get_runtime().service(PixelsService)

    @param.depends("refresh_archive", watch=True)
    def _refresh_archive(self) -> None:
        try:
            ids = [f["frame_id"] for f in reversed(self.api_service.list_frames(200))]
        except Exception as exc:  # the runtime is unavailable: say so, keep the dashboard up
            ids = []
            self.status = f"API archive unavailable: {exc}"
        self.param.archive_frame.objects = ids
        if self.archive_frame not in ids:
            self.archive_frame = ids[0] if ids else None

    def _on_upload(self, event) -> None:
        if not event.new:
            return
        try:
            self._uploaded = read_upload(self.upload.filename, event.new)
        except InvalidInput as exc:
            self.status = f"Upload refused: {exc.message}"
            return
        if self.source == UPLOADED:
            self._load()
        else:
            self.source = UPLOADED

    @param.depends("source", "size", "n_targets", "snr", "seed", "archive_frame", watch=True)
    def _load(self) -> None:
        """Choose the frame, then run every analysis on it."""
        self.truth = None
        frame = self._choose()
        if frame is None:
            self.frame = None
            self.version += 1
            return
        self.frame = frame
        self.own.put_frame(frame, "view")
        self._detect()
        self._segment()
        self._entropy()
        self._topology()
        self.status = f"{self._label} {self._summary()}"
        self.version += 1

    def _choose(self) -> np.ndarray | None:
        """The selected frame (None, with the reason in ``status``, when there is none)."""
        if self.source == GENERATED:
            try:
                frame, self.truth = thermal_scene(
                    self.size,
                    self.size,
                    n_hotspots=self.n_targets,
                    snr=self.snr,
                    dtype="uint16",
                    seed=self.seed,
                )
            except InvalidInput as exc:
                self.status = f"Scene refused: {exc.message}"
                return None
            label = f"Generated {self.size}x{self.size} scene, seed {self.seed}, {self.n_targets} targets"
        elif self.source == UPLOADED:
            if self._uploaded is None:
                self.status = "Choose a .npy or PNG file to analyse."
                return None
            frame = self._uploaded
            label = f"Uploaded {self.upload.filename}"
        else:
            if self.archive_frame is None:
                self.status = "The API archive holds no frame yet (POST /api/v1/pixels/process)."
                return None
            try:
                frame = self.api_service.get_pixels(self.archive_frame)
            except (InvalidInput, NotFound) as exc:
                self.status = f"Frame {self.archive_frame!r}: {getattr(exc, 'message', exc)}"
                return None
            if frame.size > MAX_PIXELS:
                self.status = (
                    f"Frame {self.archive_frame!r} is over the dashboard's {MAX_PIXELS} pixels."
                )
                return None
            label = f"API frame {self.archive_frame!r}"
        self._label = f"{label}: {frame.shape[1]}x{frame.shape[0]} {frame.dtype}."
        return frame

    # ------------------------------------------------------------------ analyses
    @param.depends("k_sigma", watch=True)
    def _detect_view(self) -> None:
        if self.frame is not None:
            self._detect()
            if self.segmentation_method.startswith("adaptive"):
                self._segment()
            self.status = f"{self._label} {self._summary()}"
            self.overlay_version += 1

    def _detect(self) -> None:
        self.det = self.own.process(
            frame_id="view", k_sigma=self.k_sigma, extract_features=False, return_maps=True
        )
        self.cls = self.own.classify(frame_id="view", k_sigma=self.k_sigma)
        rows = [
            {
                "hotspot_id": c["hotspot_id"],
                "x": round(c["x"], 2),
                "y": round(c["y"], 2),
                "class": c["class"],
                "confidence": round(c["confidence"], 3),
                "accepted": c["accepted"],
            }
            for c in self.cls["classifications"]
        ]
        self.table.value = pd.DataFrame(rows, columns=TABLE_COLUMNS)

    @param.depends("segmentation_method", watch=True)
    def _segment_view(self) -> None:
        if self.frame is not None:
            self._segment()
            self.overlay_version += 1

    def _segment(self) -> None:
        opts = {}
        if self.segmentation_method.startswith("adaptive"):
            # Objects stand k_sigma noise sigmas above the local mean, as the detector asks.
            opts["offset"] = -self.k_sigma * self.det["stats"]["noise_sigma"]
        self.seg = self.own.segment(frame_id="view", method=self.segmentation_method, **opts)

    @param.depends("entropy_window", watch=True)
    def _entropy_view(self) -> None:
        if self.frame is not None:
            self._entropy()
            self.entropy_version += 1

    def _entropy(self) -> None:
        self.ent = self.own.entropy(frame_id="view", window_size=self.entropy_window)

    @param.depends("topology_input", watch=True)
    def _topology_view(self) -> None:
        if self.frame is not None:
            self._topology()
            self.topology_version += 1

    def _topology(self) -> None:
        f = self.frame.astype(np.float64)
        if self.topology_input == RESIDUAL:
            f = f - np.asarray(estimate_background(f, method="mean", size=BACKGROUND_SIZE))
        self.dgm = topology.persistence_diagram(f, filtration="superlevel")
        lo, hi = float(f.min()), float(f.max())
        self._grid = np.linspace(lo, hi, BETTI_POINTS)
        self._betti = {
            dim: topology.betti_curve(self.dgm[self.dgm[:, 0] == dim, 1:], self._grid)
            for dim in (0, 1)
        }

    def _summary(self) -> str:
        n = self.det.get("num_hotspots", 0)
        counts = ", ".join(f"{v} {k}" for k, v in self.cls.get("class_counts", {}).items() if v)
        return (
            f"{n} hotspot(s) at {self.k_sigma:g} sigma" + (f" ({counts})" if counts else "") + "."
        )

    @property
    def threshold(self) -> float:
        """The Betti threshold in intensity units."""
        lo, hi = float(self._grid[0]), float(self._grid[-1])
        return lo + self.level * (hi - lo)

    # ------------------------------------------------------------------ plots
    def _image(self, a: np.ndarray, label: str, **opts) -> hv.Image:
        h, w = a.shape
        img = hv.Image((np.arange(w), np.arange(h), a), kdims=["x", "y"], vdims=[label])
        opts = {"colorbar": True, **opts}
        return img.opts(
            invert_yaxis=True,
            data_aspect=1,
            frame_height=PLOT_HEIGHT - 60,
            **opts,
        )

    @param.depends("version", "overlay_version", "show_segmentation")
    def frame_view(self) -> hv.Overlay:
        if self.frame is None:
            return hv.Overlay([hv.Text(0, 0, self.status or "No frame")])
        layers = [
            self._image(
                self.frame, "intensity", cmap="inferno", title="Frame, hotspots and segments"
            )
        ]
        if self.show_segmentation and self.seg:
            mask = np.where(np.asarray(self.seg["segmentation_mask"]) > 0, 1.0, np.nan)
            layers.append(
                self._image(
                    mask,
                    "segment",
                    cmap=["#00e5ff"],
                    alpha=0.3,
                    colorbar=False,
                    clipping_colors={"NaN": "transparent"},
                )
            )
        boxes = [
            (
                c["bbox"]["x"] - 0.5,
                c["bbox"]["y"] - 0.5,
                c["bbox"]["x"] + c["bbox"]["width"] - 0.5,
                c["bbox"]["y"] + c["bbox"]["height"] - 0.5,
                c["class"],
                round(c["confidence"], 3),
            )
            for c in self.cls.get("classifications", [])
        ]
        layers.append(
            hv.Rectangles(boxes, vdims=["class", "confidence"]).opts(
                fill_alpha=0,
                line_width=2,
                line_color=hv.dim("class").categorize(CLASS_COLORS, default="#2ca02c"),
                tools=["hover"],
            )
        )
        hs = self.det.get("hotspots", [])
        pts = pd.DataFrame(
            [
                {"x": h["x"], "y": h["y"], "peak": h["peak"], "snr": h["snr"], "area": h["area"]}
                for h in hs
            ],
            columns=["x", "y", "peak", "snr", "area"],
        )
        layers.append(
            hv.Points(pts, ["x", "y"], ["peak", "snr", "area"]).opts(
                marker="x", size=10, color="#00ff00", tools=["hover"]
            )
        )
        if self.truth is not None and len(self.truth.centroids):
            tx, ty = self.truth.centroids[:, 0], self.truth.centroids[:, 1]
            layers.append(
                hv.Points((tx, ty), ["x", "y"], label="truth").opts(
                    marker="circle", size=18, fill_alpha=0, line_color="cyan", line_width=1
                )
            )
        return hv.Overlay(layers).opts(legend_position="top_right")

    @param.depends("version", "entropy_version")
    def entropy_view(self) -> hv.Image | hv.Text:
        if self.frame is None or not self.ent:
            return hv.Text(0, 0, "No frame")
        return self._image(
            np.asarray(self.ent["entropy_map"]),
            "entropy (bits)",
            cmap="viridis",
            title=f"Local entropy, window {self.ent['window_size']} (global {self.ent['global_entropy']:.2f} bits)",
        )

    @param.depends("level")
    def _threshold_lines(self) -> hv.Overlay:
        t = self.threshold if self.frame is not None else 0.0
        return hv.VLine(t).opts(color="black") * hv.HLine(t).opts(color="black")

    @param.depends("level")
    def _threshold_vline(self) -> hv.VLine:
        return hv.VLine(self.threshold if self.frame is not None else 0.0).opts(color="black")

    @param.depends("version", "topology_version")
    def diagram_view(self) -> hv.Overlay:
        if self.frame is None:
            return hv.Overlay([hv.Text(0, 0, "No frame")])
        lo, hi = float(self._grid[0]), float(self._grid[-1])
        d = self.dgm
        death = np.where(np.isfinite(d[:, 2]), d[:, 2], lo)  # essential class drawn at the floor
        # Only the most persistent points are drawn (the rest hug the diagonal): fast to redraw.
        keep = np.argsort(-(d[:, 1] - death), kind="stable")[:MAX_DIAGRAM_POINTS]
        df = pd.DataFrame(
            {
                "birth": d[keep, 1],
                "death": death[keep],
                "dimension": [f"H{int(k)}" for k in d[keep, 0]],
            }
        )
        pts = [
            hv.Points(df[df["dimension"] == k], ["birth", "death"], ["dimension"], label=k).opts(
                color=c, size=5, alpha=0.6, tools=["hover"]
            )
            for k, c in (("H0", "#d62728"), ("H1", "#1f77b4"))
        ]
        diag = hv.Curve([(lo, lo), (hi, hi)], "birth", "death").opts(
            color="grey", line_dash="dashed"
        )
        shown = f"top {len(keep)} of {len(d)}" if len(keep) < len(d) else f"{len(d)} of {len(d)}"
        return (hv.Overlay([diag, *pts]) * hv.DynamicMap(self._threshold_lines)).opts(
            hv.opts.Overlay(
                title=f"Persistence diagram ({shown} pairs)",
                frame_width=PLOT_HEIGHT,
                frame_height=PLOT_HEIGHT - 60,
                legend_position="top_left",
            )
        )

    @param.depends("version", "topology_version")
    def betti_view(self) -> hv.Overlay:
        if self.frame is None:
            return hv.Overlay([hv.Text(0, 0, "No frame")])
        curves = [
            hv.Curve((self._grid, self._betti[dim]), "threshold", "count", label=f"b{dim}").opts(
                color=c
            )
            for dim, c in ((0, "#d62728"), (1, "#1f77b4"))
        ]
        return (hv.Overlay(curves) * hv.DynamicMap(self._threshold_vline)).opts(
            hv.opts.Overlay(
                title="Betti curves of the superlevel sets",
                frame_width=PLOT_HEIGHT,
                frame_height=PLOT_HEIGHT - 60,
                legend_position="top_right",
            )
        )

    def betti_at_threshold(self) -> tuple[int, int]:
        """``(b0, b1)`` of the superlevel set at the threshold."""
        d = self.dgm
        return tuple(
            int(topology.betti_curve(d[d[:, 0] == dim, 1:], [self.threshold])[0]) for dim in (0, 1)
        )

    @param.depends("version", "topology_version", "level")
    def betti_text(self) -> str:
        if self.frame is None:
            return ""
        b0, b1 = self.betti_at_threshold()
        return (
            f"**Topology of the {self.topology_input} frame at threshold {self.threshold:.1f}:** "
            f"b0 = {b0} component(s), b1 = {b1} loop(s) in the superlevel set. A class of the diagram is alive there when it lies right of the vertical "
            "line and below the horizontal one (born above the threshold, dies below it)."
        )

    # ------------------------------------------------------------------ layout
    def sidebar(self) -> list:
        controls = pn.Param(
            self,
            parameters=[
                "source",
                "size",
                "n_targets",
                "snr",
                "seed",
                "archive_frame",
                "refresh_archive",
                "k_sigma",
                "segmentation_method",
                "show_segmentation",
                "entropy_window",
                "topology_input",
                "level",
            ],
            widgets={
                "refresh_archive": {"type": pn.widgets.Button},
                "entropy_window": {"type": pn.widgets.IntSlider, "throttled": True},
                "level": {"type": pn.widgets.FloatSlider},
            },
            show_name=False,
        )
        return [
            controls,
            pn.pane.Markdown("**Upload a frame** (.npy or PNG)"),
            self.upload,
            pn.pane.Markdown(self.param.status),
        ]

    @staticmethod
    def _pane(view) -> pn.pane.HoloViews:
        # Unlinked: the frame's x/y and the diagram's birth/death must not share ranges.
        return pn.pane.HoloViews(view, linked_axes=False)

    def main(self) -> list:
        return [
            pn.Row(self._pane(self.frame_view), self._pane(self.entropy_view)),
            pn.Row(self._pane(self.diagram_view), self._pane(self.betti_view)),
            pn.pane.Markdown(self.betti_text),
            pn.pane.Markdown("### Hotspot classification (shipped signature model)"),
            self.table,
        ]
