"""Training room: multimodal Keras regressor, baselines, metrics, plots and model card.

TensorFlow, LightGBM and scikit-learn load inside the functions that use them.
"""

from smpp.training.model import load_model, predict_frame
from smpp.training.split import chronological_split
from smpp.training.train import TrainReport, evaluate_model_on, test_slice, train_and_evaluate

__all__ = [
    "TrainReport",
    "chronological_split",
    "evaluate_model_on",
    "load_model",
    "predict_frame",
    "test_slice",
    "train_and_evaluate",
]
