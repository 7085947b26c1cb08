"""PWSA: missile-warning IR detection, multi-target tracking, fusion, prediction, prioritization."""

# Scenario generation, IR detection, information metrics, trajectory prediction, prioritization.
from prism_kernels.pwsa.detection import DetectionResult as DetectionResult  # noqa: E402
from prism_kernels.pwsa.detection import Hotspot as Hotspot  # noqa: E402
from prism_kernels.pwsa.detection import classify as classify  # noqa: E402
from prism_kernels.pwsa.detection import detect_frame as detect_frame  # noqa: E402
from prism_kernels.pwsa.infometrics import InfoTheoryMetrics as InfoTheoryMetrics  # noqa: E402
from prism_kernels.pwsa.infometrics import frame_info_metrics as frame_info_metrics  # noqa: E402
from prism_kernels.pwsa.infometrics import series_info_metrics as series_info_metrics  # noqa: E402
from prism_kernels.pwsa.prioritize import prioritization_report as prioritization_report  # noqa: E402
from prism_kernels.pwsa.prioritize import prioritize as prioritize  # noqa: E402
from prism_kernels.pwsa.scenario import Scenario as Scenario  # noqa: E402
from prism_kernels.pwsa.scenario import generate_scenario as generate_scenario  # noqa: E402
from prism_kernels.pwsa.trajectory import Prediction as Prediction  # noqa: E402
from prism_kernels.pwsa.trajectory import impact as impact  # noqa: E402
from prism_kernels.pwsa.trajectory import impact_distribution as impact_distribution  # noqa: E402
from prism_kernels.pwsa.trajectory import predict as predict  # noqa: E402
from prism_kernels.pwsa.trajectory import predict_trajectory as predict_trajectory  # noqa: E402
from prism_kernels.pwsa.trajectory import propagate as propagate  # noqa: E402

# isort: split
# Tracking core: motion models, Kalman/EKF/IMM kernels, association, tracker, fusion, metrics.
from prism_kernels.pwsa.association import Assignment as Assignment  # noqa: E402
from prism_kernels.pwsa.association import chi2_gate as chi2_gate  # noqa: E402
from prism_kernels.pwsa.association import gnn_assign as gnn_assign  # noqa: E402
from prism_kernels.pwsa.association import mahalanobis_matrix as mahalanobis_matrix  # noqa: E402
from prism_kernels.pwsa.fusion import FusedEstimate as FusedEstimate  # noqa: E402
from prism_kernels.pwsa.fusion import covariance_intersection as covariance_intersection  # noqa: E402
from prism_kernels.pwsa.fusion import information_fusion as information_fusion  # noqa: E402
from prism_kernels.pwsa.imm import IMM as IMM  # noqa: E402
from prism_kernels.pwsa.imm import IMMState as IMMState  # noqa: E402
from prism_kernels.pwsa.kalman import KalmanUpdate as KalmanUpdate  # noqa: E402
from prism_kernels.pwsa.kalman import azel as azel  # noqa: E402
from prism_kernels.pwsa.kalman import ekf_update_angles as ekf_update_angles  # noqa: E402
from prism_kernels.pwsa.kalman import kf_predict as kf_predict  # noqa: E402
from prism_kernels.pwsa.kalman import kf_update as kf_update  # noqa: E402
from prism_kernels.pwsa.metrics import GospaResult as GospaResult  # noqa: E402
from prism_kernels.pwsa.metrics import gospa as gospa  # noqa: E402
from prism_kernels.pwsa.metrics import ospa as ospa  # noqa: E402
from prism_kernels.pwsa.models import Ballistic as Ballistic  # noqa: E402
from prism_kernels.pwsa.models import ConstantAcceleration as ConstantAcceleration  # noqa: E402
from prism_kernels.pwsa.models import ConstantVelocity as ConstantVelocity  # noqa: E402
from prism_kernels.pwsa.models import MotionModel as MotionModel  # noqa: E402
from prism_kernels.pwsa.tracker import StepResult as StepResult  # noqa: E402
from prism_kernels.pwsa.tracker import Track as Track  # noqa: E402
from prism_kernels.pwsa.tracker import Tracker as Tracker  # noqa: E402
