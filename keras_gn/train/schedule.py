"""The learning-rate schedules of every trainer here (keras-gn-imagenet,
keras-gn-kinetics, the study): the paper's step schedule with the linear
scaling rule, and Goyal et al.'s linear warm-up over it, as Keras schedules
(serializable, so a saved optimizer keeps them)."""

import keras

__all__ = ["learning_rate_schedule", "step_schedule", "LinearWarmup"]


def learning_rate_schedule(
    base_learning_rate, base_batch, decay_epochs, global_batch, steps_per_epoch, warmup_epochs=0.0
):
    """lr = base_learning_rate * global_batch / base_batch (the linear scaling
    rule), divided by 10 at each of `decay_epochs` (may be fractional): a
    Keras `PiecewiseConstantDecay` over optimizer steps; with
    `warmup_epochs`, a `LinearWarmup` of it (Goyal et al. 2017)."""
    return step_schedule(
        base_learning_rate * global_batch / base_batch,
        [int(round(e * steps_per_epoch)) for e in decay_epochs],
        int(round(warmup_epochs * steps_per_epoch)),
    )


def step_schedule(peak, boundaries, warmup_steps=0):
    """`peak`, divided by 10 after each of the optimizer steps `boundaries`:
    a Keras `PiecewiseConstantDecay`; with `warmup_steps`, a `LinearWarmup`
    of it."""
    values = [peak / 10**i for i in range(len(boundaries) + 1)]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(list(boundaries), values)
    return LinearWarmup(schedule, warmup_steps) if warmup_steps > 0 else schedule


@keras.saving.register_keras_serializable(package="keras_gn")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule`'s rate times min(1, (step + 1) / warmup_steps): a linear
    ramp over the first `warmup_steps` optimizer steps (step 0 takes
    1 / warmup_steps of the rate, step warmup_steps - 1 all of it), then
    `schedule` itself (Goyal et al. 2017's gradual warm-up, from zero)."""

    def __init__(self, schedule, warmup_steps):
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(f"warmup_steps must be a positive integer; got {warmup_steps!r}.")
        self.schedule = schedule
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        ramp = keras.ops.minimum(1.0, (keras.ops.cast(step, "float32") + 1.0) / self.warmup_steps)
        return self.schedule(step) * ramp

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["warmup_steps"])
