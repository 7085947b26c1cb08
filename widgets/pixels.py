"""The Pixels dashboard: one IR frame with its hotspots, segmentation, entropy map, topology
and the classification of each hotspot. Served at ``/pixels``; in a notebook, display
``PixelsViewer()``.

Three sources, chosen in the sidebar:

* **generated** -- a seeded :func:`prism_kernels.pixels.thermal_scene` (its true target
  positions are drawn as circles);
* **uploaded** -- a ``.npy`` array or a PNG (read through Pillow, greyscale) from the file
  picker;
* **API archive** -- a frame that ``/api/v1/pixels/...`` stored in the runtime's
  :class:`~prism_kernels.pixels.service.PixelsService` (frames up to the archive's pixel cap).

Generated and uploaded frames are analysed by a :class:`PixelsService` of the viewer's own (an
in-memory store), so browsing never fills the API's archive. Each analysis is a result of its
own (:attr:`PixelsViewer.outputs`): a control recomputes only what depends on it (the
entropy window only the entropy map, the confidence threshold only the classification), off
the server's event loop. The Betti threshold only moves the lines on the persistence diagram
and the Betti curves. Everything is computed by ``prism_kernels``; this module lays it out.
"""

from __future__ import annotations

import io
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from PIL import Image, UnidentifiedImageError

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.pixels import topology
from prism_kernels.pixels.frames import validate_frame
from prism_kernels.pixels.processing import estimate_background
from prism_kernels.pixels.scene import thermal_scene
from prism_kernels.pixels.service import PixelsService
from widgets.base import DomainViewer, Result, rerange, result_table

GENERATED, UPLOADED, ARCHIVE = "generated", "uploaded", "API archive"
RESIDUAL, RAW = "background-subtracted frame", "raw frame"
#: Background window of the topology input (pixels; the detector's default).
BACKGROUND_SIZE = 31
SEGMENT_METHODS = ["otsu", "multi_otsu", "adaptive", "adaptive_mean", "watershed"]
CLASS_COLORS = {
    "missile_plume": "#d62728",
    "aircraft": "#1f77b4",
    "flare_decoy": "#ff7f0e",
    "clutter": "#9467bd",
}
BELOW_LABEL = "below threshold"  # hotspots classified below the confidence threshold
BOX_COLORS = {**CLASS_COLORS, BELOW_LABEL: "#bdbdbd"}
#: Largest frame the dashboard analyses (pixels); bigger uploads are refused with a message.
MAX_PIXELS = 1024 * 1024
#: Most persistent pairs drawn on the persistence diagram.
MAX_DIAGRAM_POINTS = 3000
#: Points of the Betti curves.
BETTI_POINTS = 200
#: Table column -> (key of a classification, decimals or None).
TABLE = {
    "Hotspot": ("hotspot_id", None),
    "x (pixels)": ("x", 2),
    "y (pixels)": ("y", 2),
    "Class": ("class", None),
    "Confidence (0-1)": ("confidence", 3),
    "Accepted": ("accepted", None),
}
PLOT_WIDTH, PLOT_HEIGHT = 460, 400
#: Longer side of a frame's image (screen pixels), and the borders around it (left, right,
#: top, bottom; screen pixels): axis, nothing, title and toolbar, axis and colour bar and legend.
FRAME_SIDE = 320
IMAGE_BORDERS = (70, 10, 90, 200)

X = hv.Dimension("x", label="x (column)", unit="pixels")
Y = hv.Dimension("y", label="y (row)", unit="pixels")
COUNTS = hv.Dimension("intensity", label="Intensity", unit="counts")
BITS = hv.Dimension("entropy", label="Local entropy", unit="bits")
BIRTH = hv.Dimension("birth", label="Birth", unit="counts")
DEATH = hv.Dimension("death", label="Death", unit="counts")
LEVEL = hv.Dimension("threshold", label="Threshold", unit="counts")
BETTI = hv.Dimension("count", label="Betti number (classes)")
HOVER = [
    hv.Dimension("peak", label="Peak above background", unit="counts"),
    hv.Dimension("snr", label="Peak SNR (peak / noise sigma)"),
    hv.Dimension("area", label="Area", unit="pixels"),
]


def read_upload(filename: str, data: bytes) -> np.ndarray:
    """A frame from uploaded bytes: ``.npy`` (a 2-D numeric array) or an image (greyscale)."""
    name = (filename or "").lower()
    if name.endswith(".npy"):
        try:
            a = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InvalidInput("file", f"not a readable .npy array ({exc})") from exc
    else:
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
        The generated scene (side in pixels, number of targets, peak SNR in noise sigmas,
        seed).
    k_sigma : float
        Hotspot detection threshold in robust noise sigmas.
    confidence_threshold : float
        A hotspot's class is accepted at this confidence (posterior probability) or above.
    segmentation_method : str
        Method of the segmentation overlay (``adaptive``: the local mean plus ``k_sigma`` noise
        sigmas, like the detector; the global methods also split the background).
    entropy_window : int
        Side of the local-entropy window (pixels; a disk of that diameter).
    topology_input : {"background-subtracted frame", "raw frame"}
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
    service_class = PixelsService  # the API's archive (the "API archive" source)
    #: The control the browser test changes (see :class:`widgets.base.DomainViewer`).
    probe = ("size", 128)
    #: Another generated scene, of another size: every plot must re-range onto it.
    source_probe = ("size", 384)
    outputs = (
        Result(
            "frame",
            ("source", "size", "n_targets", "snr", "seed", "archive_frame", "upload_count"),
        ),
        Result("detection", ("frame", "k_sigma")),
        Result("classification", ("frame", "k_sigma", "confidence_threshold")),
        Result("segmentation", ("frame", "detection", "segmentation_method", "k_sigma")),
        Result("entropy", ("frame", "entropy_window")),
        Result("topology", ("frame", "topology_input")),
    )

    source = param.Selector(
        default=GENERATED, objects=[GENERATED, UPLOADED, ARCHIVE], label="Source", doc="Which frame"
    )
    size = param.Selector(
        default=256, objects=[128, 256, 384, 512], label="Generated frame side (pixels)"
    )
    n_targets = param.Integer(default=6, bounds=(0, 20), label="Targets in the scene (count)")
    snr = param.Number(
        default=25.0,
        bounds=(3.0, 100.0),
        step=1.0,
        label="Target peak SNR (peak / noise sigma)",
        doc="Linear ratio of a target's peak to the noise standard deviation",
    )
    seed = param.Integer(default=0, bounds=(0, 100_000), label="Scene seed")
    archive_frame = param.Selector(
        default=None, objects=[], allow_None=True, label="API frame", doc="A frame the API stored"
    )
    refresh_archive = param.Event(label="Refresh archive list")
    upload_count = param.Integer(default=0, precedence=-1, doc="Frames uploaded so far")
    k_sigma = param.Number(
        default=6.0,
        bounds=(3.0, 20.0),
        step=0.5,
        label="Detection threshold (k sigma)",
        doc="Robust noise sigmas above the background",
    )
    confidence_threshold = param.Number(
        default=0.5,
        bounds=(0.0, 1.0),
        step=0.05,
        label="Class accepted at confidence (0-1)",
        doc="A class below this posterior probability is listed as not accepted",
    )
    segmentation_method = param.Selector(
        default="adaptive", objects=SEGMENT_METHODS, label="Segmentation method"
    )
    show_segmentation = param.Boolean(default=True, label="Show the segmentation overlay")
    entropy_window = param.Integer(
        default=7, bounds=(3, 31), step=2, label="Entropy window (pixels)"
    )
    topology_input = param.Selector(default=RESIDUAL, objects=[RESIDUAL, RAW], label="Topology of")
    level = param.Number(
        default=0.4, bounds=(0.0, 1.0), step=0.01, label="Betti threshold (fraction of range)"
    )

    def __init__(self, service: PixelsService | None = None, **params: Any) -> None:
        super().__init__(service=service, **params)
        self.own = PixelsService(max_frames=4)  # generated and uploaded frames: never the API's
        self._uploaded: np.ndarray | None = None
        self.upload = pn.widgets.FileInput(accept=".npy,.png,.tif,.tiff,.jpg,.jpeg", multiple=False)
        self.upload.param.watch(self._on_upload, "value")
        self.table = result_table(TABLE, height=240)
        self.note = ""
        self._refresh_archive()
        self.refresh()

    # ------------------------------------------------------------------ frames
    @param.depends("refresh_archive", watch=True)
    def _refresh_archive(self) -> None:
        try:
            ids = [f["frame_id"] for f in self.service.list_frames(200)]  # newest first
        except Exception as exc:  # the runtime is unavailable: say so, keep the dashboard up
            ids = []
            self.status = f"API archive unavailable: {exc}"
        self.param.archive_frame.objects = ids
        if self.archive_frame not in ids:
            self.archive_frame = ids[0] if ids else None

    def _on_upload(self, event: Any) -> None:
        if not event.new:
            return
        name = self.upload.filename

        def read() -> tuple[np.ndarray | None, str]:
            try:
                return read_upload(name, event.new), ""
            except InvalidInput as exc:
                return None, f"Upload refused: {exc.message}"

        self.run_in_background(read, self._uploaded_frame)

    def _uploaded_frame(self, got: tuple[np.ndarray | None, str]) -> None:
        frame, message = got
        if frame is None:
            self.status = message
            return
        self._uploaded = frame
        if self.source == UPLOADED:
            self.upload_count += 1
        else:
            self.source = UPLOADED

    def compute_frame(self) -> dict[str, Any]:
        """The selected frame: ``pixels`` (None, with the reason in ``note``, when there is
        none), the scene's ``truth`` and a ``label``."""
        out: dict[str, Any] = {"pixels": None, "truth": None, "label": "", "note": ""}
        if self.source == GENERATED:
            frame, out["truth"] = thermal_scene(
                self.size,
                self.size,
                n_hotspots=self.n_targets,
                snr=self.snr,
                dtype="uint16",
                seed=self.seed,
            )
            label = f"Generated {self.size}x{self.size} scene, seed {self.seed}, {self.n_targets} targets"
        elif self.source == UPLOADED:
            if self._uploaded is None:
                return {**out, "note": "Choose a .npy or PNG file to analyse."}
            frame, label = self._uploaded, f"Uploaded {self.upload.filename}"
        else:
            if self.archive_frame is None:
                note = "The API archive holds no frame yet (POST /api/v1/pixels/process)."
                return {**out, "note": note}
            try:
                frame = self.service.get_pixels(self.archive_frame)
            except (InvalidInput, NotFound) as exc:
                return {**out, "note": f"Frame {self.archive_frame!r}: {exc}"}
            if frame.size > MAX_PIXELS:
                note = f"Frame {self.archive_frame!r} is over the dashboard's {MAX_PIXELS} pixels."
                return {**out, "note": note}
            label = f"API frame {self.archive_frame!r}"
        self.own.put_frame(frame, "view")
        out["pixels"] = frame
        out["label"] = f"{label}: {frame.shape[1]}x{frame.shape[0]} {frame.dtype}."
        return out

    @property
    def frame(self) -> np.ndarray | None:
        """The frame shown (None when the source has none)."""
        return (self.value.get("frame") or {}).get("pixels")

    @property
    def truth(self) -> Any:
        """The generated scene's truth (None for other sources)."""
        return (self.value.get("frame") or {}).get("truth")

    # ------------------------------------------------------------------ analyses
    def compute_detection(self) -> dict[str, Any] | None:
        if self.frame is None:
            return None
        return self.own.process(
            self.frame, "view", k_sigma=self.k_sigma, extract_features=False, return_maps=True
        )

    def compute_classification(self) -> dict[str, Any] | None:
        if self.frame is None:
            return None
        return self.own.classify(
            self.frame,
            "view",
            k_sigma=self.k_sigma,
            confidence_threshold=self.confidence_threshold,
        )

    def compute_segmentation(self) -> dict[str, Any] | None:
        det = self.value.get("detection")
        if self.frame is None or det is None:
            return None
        opts = {}
        if self.segmentation_method.startswith("adaptive"):
            # Objects stand k_sigma noise sigmas above the local mean, as the detector asks.
            opts["offset"] = -self.k_sigma * (det["stats"]["noise_sigma"] or 0.0)
        return self.own.segment(self.frame, "view", method=self.segmentation_method, **opts)

    def compute_entropy(self) -> dict[str, Any] | None:
        if self.frame is None:
            return None
        return self.own.entropy(self.frame, "view", window_size=self.entropy_window)

    def compute_topology(self) -> dict[str, Any] | None:
        """Superlevel persistence diagram and Betti curves of the chosen input (counts)."""
        if self.frame is None:
            return None
        f = self.frame.astype(np.float64)
        if self.topology_input == RESIDUAL:
            f = f - estimate_background(f, "mean", BACKGROUND_SIZE)
        dgm = topology.persistence_diagram(f, filtration="superlevel")
        grid = np.linspace(float(f.min()), float(f.max()), BETTI_POINTS)
        betti = {dim: topology.betti_curve(dgm[dgm[:, 0] == dim, 1:], grid) for dim in (0, 1)}
        return {"diagram": dgm, "grid": grid, "betti": betti, "input": self.topology_input}

    def after_refresh(self, names: list[str]) -> None:
        if "classification" in names:
            rows = (self.value.get("classification") or {}).get("classifications", [])
            self.table.value = pd.DataFrame(
                [
                    {
                        col: (round(r[key], dec) if dec is not None else r.get(key))
                        for col, (key, dec) in TABLE.items()
                    }
                    for r in rows
                ],
                columns=list(TABLE),
            )
        if not self.status:  # no error: say what is shown
            self.status = self.summary_text()

    def summary_text(self) -> str:
        """What the dashboard shows, in one line."""
        fr = self.value.get("frame") or {}
        if fr.get("pixels") is None:
            return fr.get("note", "")
        det = self.value.get("detection") or {}
        cls = self.value.get("classification") or {}
        counts = ", ".join(f"{v} {k}" for k, v in cls.get("class_counts", {}).items() if v)
        accepted = f"; accepted at confidence >= {self.confidence_threshold:.2f}: " + (
            counts or "none"
        )
        n = det.get("num_hotspots", 0)
        return f"{fr['label']} {n} hotspot(s) at {self.k_sigma:g} sigma{accepted}."

    @property
    def threshold(self) -> float:
        """The Betti threshold in the topology input's units (counts)."""
        grid = (self.value.get("topology") or {}).get("grid")
        if grid is None:
            return 0.0
        lo, hi = float(grid[0]), float(grid[-1])
        return lo + self.level * (hi - lo)

    def betti_at_threshold(self) -> tuple[int, int]:
        """``(b0, b1)`` of the superlevel set at the threshold."""
        d = self.value["topology"]["diagram"]
        return tuple(
            int(topology.betti_curve(d[d[:, 0] == dim, 1:], [self.threshold])[0]) for dim in (0, 1)
        )

    # ------------------------------------------------------------------ plots
    def _image(self, a: np.ndarray, value: hv.Dimension, **opts: Any) -> hv.Image:
        """A frame in pixel coordinates, one screen pixel per data unit on both axes.

        The figure has a fixed total size: the frame's (``FRAME_SIDE`` on its longer side)
        plus fixed borders (``IMAGE_BORDERS``) wide enough for the axes, the title and
        toolbar above and the colour bar and legend below, so the frame keeps the data's
        aspect whatever the labels hold. (Sizing by frame alone leaves the total size unset,
        which Bokeh warns about: W-1005.)
        """
        h, w = a.shape
        side = FRAME_SIDE / max(h, w)
        left, right, top, bottom = IMAGE_BORDERS
        img = hv.Image((np.arange(w), np.arange(h), a), kdims=[X, Y], vdims=[value])
        return img.opts(
            invert_yaxis=True,
            width=max(1, round(w * side)) + left + right,
            height=max(1, round(h * side)) + top + bottom,
            hooks=[_fixed_borders],
            toolbar="above",
            colorbar_position="bottom",
            **{"colorbar": True, **opts},
        )

    def frame_view(self, **_: Any) -> hv.Overlay:
        """Frame, segmentation overlay, classified boxes, hotspots and true targets.

        The same layers every time (empty when there is nothing to draw), so the plot
        updates in place; box colours follow the accepted class, dashed grey below the
        confidence threshold.
        """
        frame = self.frame
        pixels = frame if frame is not None else np.zeros((1, 1))
        layers = [self._image(pixels, COUNTS, cmap="inferno", title="Frame, hotspots and segments")]
        seg = self.value.get("segmentation") if frame is not None else None
        mask = np.zeros(pixels.shape)
        if self.show_segmentation and seg:
            mask = (np.asarray(seg["segmentation_mask"]) > 0).astype(np.float64)
        layers.append(  # objects in cyan, the rest fully transparent
            self._image(
                mask,
                hv.Dimension("segment"),
                cmap=["#00000000", "#00e5ff"],
                clim=(0.0, 1.0),
                alpha=0.3,
                colorbar=False,
            )
        )
        cls = (self.value.get("classification") or {}).get("classifications", [])
        boxes = [
            (
                c["bbox"]["x"] - 0.5,
                c["bbox"]["y"] - 0.5,
                c["bbox"]["x"] + c["bbox"]["width"] - 0.5,
                c["bbox"]["y"] + c["bbox"]["height"] - 0.5,
                c["class"] if c["accepted"] else BELOW_LABEL,
                c["class"],
                round(c["confidence"], 3),
            )
            for c in (cls if frame is not None else [])
        ]
        layers.append(  # one colour (and legend entry) per accepted class, grey below threshold
            hv.Rectangles(
                boxes,
                kdims=[X, Y, "x1", "y1"],
                vdims=[
                    hv.Dimension("key", label="Box"),
                    hv.Dimension("class", label="Most likely class"),
                    hv.Dimension("confidence", label="Confidence (0-1)"),
                ],
            ).opts(
                fill_alpha=0,
                line_width=2,
                line_color="key",
                cmap=BOX_COLORS,
                show_legend=True,
                tools=["hover"],
            )
        )
        hs = (self.value.get("detection") or {}).get("hotspots", []) if frame is not None else []
        pts = pd.DataFrame(
            [
                {"x": h["x"], "y": h["y"], "peak": h["peak"], "snr": h["snr"], "area": h["area"]}
                for h in hs
            ],
            columns=["x", "y", "peak", "snr", "area"],
        )
        layers.append(
            hv.Points(pts, [X, Y], HOVER, label="hotspot").opts(
                marker="x", size=10, color="#00ff00", tools=["hover"]
            )
        )
        truth = self.truth.centroids if frame is not None and self.truth is not None else []
        truth = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
        layers.append(
            hv.Points((truth[:, 0], truth[:, 1]), [X, Y], label="true target").opts(
                marker="circle", size=18, fill_alpha=0, line_color="cyan", line_width=1
            )
        )
        return rerange(
            hv.Overlay(layers).opts(legend_position="bottom", legend_cols=3, hooks=[_fixed_borders])
        )

    def entropy_view(self, **_: Any) -> hv.Image:
        ent = self.value.get("entropy") if self.frame is not None else None
        if not ent:
            return self._image(np.zeros((1, 1)), BITS, cmap="viridis", title="Local entropy")
        g = ent["global_entropy"]
        title = f"Local entropy, window {ent['window_size']} px"
        title += f" (frame: {g:.2f} bits)" if g is not None else ""
        return self._image(np.asarray(ent["entropy_map"]), BITS, cmap="viridis", title=title)

    def diagram_view(self, **_: Any) -> hv.Overlay:
        """Persistence diagram of the superlevel filtration with the threshold's lines."""
        top = self.value.get("topology") if self.frame is not None else None
        d = top["diagram"] if top else np.empty((0, 3))
        lo, hi = (float(top["grid"][0]), float(top["grid"][-1])) if top else (0.0, 1.0)
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
        label = {"H0": "H0 (components)", "H1": "H1 (loops)"}
        pts = [
            hv.Points(df[df["dimension"] == k], [BIRTH, DEATH], ["dimension"], label=label[k]).opts(
                color=c, size=5, alpha=0.6, tools=["hover"]
            )
            for k, c in (("H0", "#d62728"), ("H1", "#1f77b4"))
        ]
        diag = hv.Curve([(lo, lo), (hi, hi)], BIRTH, DEATH, label="birth = death").opts(
            color="grey", line_dash="dashed"
        )
        t = self.threshold
        cross = [
            hv.Curve(line, BIRTH, DEATH, label="threshold").opts(color="black")
            for line in ([(t, lo), (t, hi)], [(lo, t), (hi, t)])
        ]
        shown = f"top {len(keep)} of {len(d)}" if len(keep) < len(d) else f"{len(d)} of {len(d)}"
        return rerange(
            hv.Overlay([diag, *pts, *cross]).opts(
                title=f"Persistence diagram ({shown} pairs)",
                width=PLOT_WIDTH,
                height=PLOT_HEIGHT,
                legend_position="top_left",  # superlevel pairs lie below the diagonal
                padding=0.05,
            )
        )

    def betti_view(self, **_: Any) -> hv.Overlay:
        """Betti numbers of the superlevel sets against the threshold."""
        top = self.value.get("topology") if self.frame is not None else None
        grid = top["grid"] if top else np.zeros(0)
        curves = [
            hv.Curve(
                (grid, top["betti"][dim] if top else np.zeros(0)), LEVEL, BETTI, label=f"b{dim}"
            ).opts(color=c)
            for dim, c in ((0, "#d62728"), (1, "#1f77b4"))
        ]
        t = self.threshold
        top_count = max([float(np.max(c.dimension_values(1))) for c in curves if len(c)] + [1.0])
        line = hv.Curve([(t, 0.0), (t, top_count)], LEVEL, BETTI, label="threshold").opts(
            color="black"
        )
        return rerange(
            hv.Overlay([*curves, line]).opts(
                title="Betti curves of the superlevel sets",
                width=PLOT_WIDTH,
                height=PLOT_HEIGHT,
                legend_position="top_right",
            )
        )

    @param.depends("topology_version", "level")
    def betti_text(self) -> str:
        top = self.value.get("topology")
        if self.frame is None or not top:
            return ""
        b0, b1 = self.betti_at_threshold()
        return (
            f"**Topology of the {top['input']} at threshold {self.threshold:.1f} counts:** "
            f"b0 = {b0} component(s), b1 = {b1} loop(s) in the superlevel set. A class of the "
            "diagram is alive there when it lies right of the vertical line and below the "
            "horizontal one (born above the threshold, dies below it)."
        )

    @param.depends("classification_version")
    def table_title(self) -> str:
        return (
            "### Hotspot classification (shipped signature model): a class is accepted at "
            f"confidence >= {self.confidence_threshold:.2f}"
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
                "confidence_threshold",
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
        return [controls, pn.pane.Markdown("**Upload a frame** (.npy or PNG)"), self.upload]

    def _dmap(
        self, fn: Any, results: tuple[str, ...], controls: tuple[str, ...] = ()
    ) -> pn.pane.HoloViews:
        """A plot that updates in place when ``results`` (their versions) or view-only
        ``controls`` change, re-ranged on its data. Unlinked: the frame's x/y and the
        diagram's birth/death share no ranges."""
        stream = hv.streams.Params(self, [f"{r}_version" for r in results] + list(controls))
        return pn.pane.HoloViews(rerange(hv.DynamicMap(fn, streams=[stream])), linked_axes=False)

    def main(self) -> list:
        return [
            pn.Row(
                self._dmap(
                    self.frame_view,
                    ("frame", "detection", "classification", "segmentation"),
                    ("show_segmentation",),
                ),
                self._dmap(self.entropy_view, ("frame", "entropy")),
            ),
            pn.Row(
                self._dmap(self.diagram_view, ("frame", "topology"), ("level",)),
                self._dmap(self.betti_view, ("frame", "topology"), ("level",)),
            ),
            pn.pane.Markdown(self.betti_text),
            pn.pane.Markdown(self.table_title),
            self.table,
        ]


def _fixed_borders(plot: Any, element: Any) -> None:
    """Borders of exactly :data:`IMAGE_BORDERS` around an image's frame (see ``_image``)."""
    fig = plot.state
    fig.min_border_left, fig.min_border_right, fig.min_border_top, fig.min_border_bottom = (
        IMAGE_BORDERS
    )
