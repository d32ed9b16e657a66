"""Training room: multimodal Keras regressor, baselines, metrics, plots and model card.

TensorFlow, LightGBM and scikit-learn load inside the functions that use them.
"""

from smpp.training.model import load_model, predict_frame
from smpp.training.split import chronological_split
from smpp.training.train import TrainReport, train_and_evaluate

__all__ = [
    "TrainReport",
    "chronological_split",
    "load_model",
    "predict_frame",
    "train_and_evaluate",
]
