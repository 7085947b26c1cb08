"""Pixels: IR frame processing, local entropy, segmentation, persistent homology, classification."""

# Frames, processing, hotspots, entropy and segmentation.
from prism_kernels.pixels.entropy import global_entropy, high_entropy_regions, local_entropy
from prism_kernels.pixels.frames import (
    decode_frame,
    encode_frame,
    from_b64,
    from_pixels,
    validate_frame,
)
from prism_kernels.pixels.hotspots import HotspotDetection, detect_hotspots, label_stack
from prism_kernels.pixels.processing import (
    estimate_background,
    frame_stats,
    noise_sigma,
    white_tophat,
)
from prism_kernels.pixels.scene import SceneTruth, thermal_batch, thermal_scene
from prism_kernels.pixels.segment import (
    adaptive_threshold,
    multi_otsu_thresholds,
    otsu_threshold,
    region_stats,
    segment,
    watershed_segment,
)

# Persistent homology, signatures, classification and the frame archive.
from prism_kernels.pixels.signatures import CLASSES, generate_dataset, generate_signature
from prism_kernels.pixels.topology import (
    betti_curve,
    betti_numbers,
    h0_diagrams,
    h1_diagrams,
    persistence_diagram,
    persistence_image,
    persistence_landscape,
    persistent_entropy,
    tda_summary,
    total_persistence,
)

# Loaded on first use, so `python -m prism_kernels.pixels.classify --train` does not find its
# module already imported by the package. (classify.classify is not re-exported: the name
# would shadow the submodule prism_kernels.pixels.classify.)
_LAZY = {
    "SignatureClassifier": "classify",
    "classify_track": "classify",
    "track_features": "classify",
    "PixelsService": "service",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"prism_kernels.pixels.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'prism_kernels.pixels' has no attribute {name!r}")
