"""The imaging core shared by every domain that reads IR frames (PWSA detection, pixels).

One module per idea, each the only place that idea is implemented:

* :mod:`~prism_kernels.imaging.frames`: frame validation (:func:`check_frames`,
  :func:`as_frames`);
* :mod:`~prism_kernels.imaging.noise`: robust noise sigma (:func:`robust_sigma`,
  :func:`frame_noise`, :func:`difference_sigma`);
* :mod:`~prism_kernels.imaging.background`: background estimation (:func:`estimate_background`,
  :func:`fit_background`);
* :mod:`~prism_kernels.imaging.hotspots`: hotspot detection (:func:`detect`, :func:`label_stack`);
* :mod:`~prism_kernels.imaging.entropy`: histogram entropy (:func:`histogram_entropy`,
  :func:`quantize`);
* :mod:`~prism_kernels.imaging.order`: order statistics by selection, never full sorts
  (:func:`kth_smallest`, :func:`quantiles`, :func:`median`);
* :mod:`~prism_kernels.imaging.boxfilter`: the local mean, compiled, equal to SciPy's;
* :mod:`~prism_kernels.imaging.fused`: the detector fused into one compiled pass per frame.

Kernels are backend-generic where the idea allows (validation, noise, order statistics, the
polynomial background); labelling, window filters and histograms run on the host.
"""

from prism_kernels.imaging.background import (
    Background,
    estimate_background,
    fit_background,
    stack_background,
)
from prism_kernels.imaging.entropy import (
    entropy_of_counts,
    histogram_entropy,
    quantize,
    uniform_codes,
)
from prism_kernels.imaging.frames import as_frames, check_frames
from prism_kernels.imaging.hotspots import Detection, Hotspots, detect, label_stack
from prism_kernels.imaging.noise import difference_sigma, frame_noise, median, robust_sigma
from prism_kernels.imaging.order import kth_smallest, quantiles

__all__ = [
    "Background",
    "Detection",
    "Hotspots",
    "as_frames",
    "check_frames",
    "detect",
    "difference_sigma",
    "entropy_of_counts",
    "estimate_background",
    "fit_background",
    "frame_noise",
    "histogram_entropy",
    "kth_smallest",
    "label_stack",
    "median",
    "quantize",
    "quantiles",
    "robust_sigma",
    "stack_background",
    "uniform_codes",
]
