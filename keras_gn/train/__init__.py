"""Training: strategies from flags and the image-classification loop."""

from keras_gn.train.classification import TrainConfig, learning_rate_schedule, train
from keras_gn.train.strategy import STRATEGIES, make_strategy, split_cpu

__all__ = ["TrainConfig", "train", "learning_rate_schedule", "make_strategy", "split_cpu", "STRATEGIES"]
