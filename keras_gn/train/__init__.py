"""Training, by job: `config` (what a run is: `RunConfig`, `TrainConfig`),
`schedule` (the learning rate), `task` (what is trained: `ImageTask`),
`backup` (the crash-safe resume), `loop` (`train`), `video` (`VideoConfig`,
`VideoTask`), `strategy` (tf.distribute) and `cli` (flags)."""

from keras_gn.train.config import RunConfig, TrainConfig
from keras_gn.train.loop import compile_classifier, resolve_precision, train
from keras_gn.train.schedule import LinearWarmup, learning_rate_schedule, step_schedule
from keras_gn.train.strategy import STRATEGIES, make_strategy, split_cpu
from keras_gn.train.task import ImageTask

__all__ = [
    "RunConfig",
    "TrainConfig",
    "ImageTask",
    "train",
    "learning_rate_schedule",
    "step_schedule",
    "LinearWarmup",
    "compile_classifier",
    "resolve_precision",
    "make_strategy",
    "split_cpu",
    "STRATEGIES",
]
