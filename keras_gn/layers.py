"""`GroupNormalization`: the Keras 3 layer, a thin wrapper over `keras_gn.ops`."""

import math

import keras

from keras_gn import ops as gn_ops

__all__ = [
    "GroupNormalization",
    "GroupNormArguments",
    "AddonsGroupNormalization",
    "layer_norm",
    "instance_norm",
    "fitted_groups",
    "resolve_groups",
    "validate_arguments",
    "EPSILON",
]

DEFAULT_GROUPS = 32  # The paper's best setting (Table 3).
# The paper's, PyTorch's (torch.nn.GroupNorm), timm's and detectron2's: the
# published GN weights were trained with it. Keras's own layer has 1e-3.
EPSILON = 1e-5


def fitted_groups(channels, groups):
    """The groups `fit_groups=True` uses for `channels` when `groups` does
    not divide them: gcd(channels, groups), the largest number dividing both.

    Each group of the result is a union of whole groups of the grouping
    asked for: never finer than asked. The paper's Table 3 shows GN robust
    to fewer groups (8 groups 24.4% error, 2 groups 24.7%, against 24.1% at
    32) and not to fewer channels per group (2 per group 25.6%, 1 per group,
    Instance Normalization, 28.4%). The divisor of the channels nearest to
    32 would give 24 channels 24 groups of one channel (IN); gcd gives 8
    groups of 3. detectron2 and torch.nn.GroupNorm raise instead (as this
    layer does by default); timm's GN EfficientNets fix channels per group
    (8), which needs channel counts that 8 divides.
    """
    return math.gcd(int(channels), int(groups))


def _check_positive_int(name, value):
    if not gn_ops.is_integer(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def resolve_groups(channels, groups=None, group_size=None, fit_groups=False):
    """Number of groups for `channels`, from `groups` (None: 32; -1: one
    group per channel) or from `group_size`; with `fit_groups`, a `groups`
    that does not divide the channels gives `fitted_groups(channels, groups)`.

    Raises ValueError when the channels cannot be split as asked.
    """
    gn_ops.check_groups(channels, 1)  # a defined channel count
    if group_size is not None:
        if channels % group_size or group_size > channels:
            raise ValueError(
                f"group_size={group_size} does not divide the {channels} channels of the input into whole groups."
            )
        return channels // group_size
    groups = DEFAULT_GROUPS if groups is None else groups
    if groups == -1:
        return channels
    if fit_groups:
        return fitted_groups(channels, groups)
    try:
        gn_ops.check_groups(channels, groups)
    except ValueError as error:
        raise ValueError(
            f"{error} Or pass fit_groups=True for gcd({channels}, {groups}) = {fitted_groups(channels, groups)} groups."
        ) from None
    return groups


def core_mode(input_shape):
    """The core's `compiled` argument for a layer built on `input_shape`:
    None (XLA-compiled where a graph's sizes are static) when every size
    but the batch is known, and False (plain TensorFlow ops) when the model
    leaves sizes open, as detectors and segmenters that see every image
    size do: there no shape repeats, and a compiled core would compile
    again at each one."""
    return None if all(size is not None for size in tuple(input_shape)[1:]) else False


def validate_arguments(groups, group_size, axis, epsilon):
    """Raises at construction for arguments no input can make valid."""
    if groups is not None and group_size is not None:
        raise ValueError(
            f"Give either groups or group_size, not both; got groups={groups} and group_size={group_size}."
        )
    if groups is not None and groups != -1:
        if not gn_ops.is_integer(groups) or groups < 1:
            raise ValueError(f"groups must be a positive integer, or -1 for one group per channel; got {groups!r}.")
    if group_size is not None:
        _check_positive_int("group_size", group_size)
    if not gn_ops.is_integer(axis):
        raise TypeError(f"axis must be an int (-1 or 1); got {axis!r}.")
    if axis == 0:
        raise ValueError(
            "axis=0 is the batch axis, which cannot hold the channels; use -1 (channels_last) or 1 (channels_first)."
        )
    gn_ops.check_epsilon(epsilon)


class GroupNormArguments:
    """The arguments, config and build shared by the Keras 3 layer and its
    tf_keras twin (`keras_gn.legacy`); `_K` is the Keras module of the
    subclass, `_autocast_flag` the name of its `add_weight`'s autocast
    argument."""

    _K = keras
    _autocast_flag = "autocast"

    def __init__(
        self,
        groups=None,
        axis=-1,
        epsilon=EPSILON,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        *,
        group_size=None,
        fit_groups=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        validate_arguments(groups, group_size, axis, epsilon)
        # Plain Python numbers: NumPy scalars are accepted, but the config
        # must stay JSON.
        self.groups = None if groups is None else int(groups)
        self.group_size = None if group_size is None else int(group_size)
        self.fit_groups = bool(fit_groups)
        self.axis = int(axis)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = self._K.initializers.get(beta_initializer)
        self.gamma_initializer = self._K.initializers.get(gamma_initializer)
        self.beta_regularizer = self._K.regularizers.get(beta_regularizer)
        self.gamma_regularizer = self._K.regularizers.get(gamma_regularizer)
        self.beta_constraint = self._K.constraints.get(beta_constraint)
        self.gamma_constraint = self._K.constraints.get(gamma_constraint)
        self.supports_masking = True

    @property
    def num_groups(self):
        """The number of groups G in use (known once the layer is built)."""
        return getattr(self, "_num_groups", None)

    def _build_group_norm(self, input_shape):
        """Checks the shape, resolves the groups and adds gamma and beta."""
        shape = tuple(input_shape)
        rank = len(shape)
        channel_axis = gn_ops.normalize_axis(self.axis, rank)
        channels = shape[channel_axis]
        try:
            self._num_groups = resolve_groups(channels, self.groups, self.group_size, self.fit_groups)
        except ValueError as error:
            raise ValueError(f"{error} (layer {self.name!r}, input shape {shape})") from None
        self._compiled = core_mode(shape)
        self.input_spec = self._K.layers.InputSpec(ndim=rank, axes={channel_axis: channels})
        # Kept in the variable dtype (float32) under mixed precision, not
        # autocast: the scale and shift are folded in float32 with the
        # statistics.
        self.gamma = self.beta = None
        for name, wanted, initializer, regularizer, constraint in (
            ("gamma", self.scale, self.gamma_initializer, self.gamma_regularizer, self.gamma_constraint),
            ("beta", self.center, self.beta_initializer, self.beta_regularizer, self.beta_constraint),
        ):
            if wanted:
                weight = self.add_weight(
                    name=name,
                    shape=(channels,),
                    initializer=initializer,
                    regularizer=regularizer,
                    constraint=constraint,
                    **{self._autocast_flag: False},
                )
                setattr(self, name, weight)

    def _group_norm(self, inputs, gamma, beta):
        return gn_ops.group_norm(
            inputs, gamma, beta, self._num_groups, self.axis, self.epsilon, compiled=self._compiled
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "groups": self.groups,
                "group_size": self.group_size,
                "fit_groups": self.fit_groups,
                "axis": self.axis,
                "epsilon": self.epsilon,
                "center": self.center,
                "scale": self.scale,
                "beta_initializer": self._K.initializers.serialize(self.beta_initializer),
                "gamma_initializer": self._K.initializers.serialize(self.gamma_initializer),
                "beta_regularizer": self._K.regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": self._K.regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": self._K.constraints.serialize(self.beta_constraint),
                "gamma_constraint": self._K.constraints.serialize(self.gamma_constraint),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_gn")
class GroupNormalization(GroupNormArguments, keras.layers.Layer):
    """Group Normalization (Wu & He, ECCV 2018).

    Normalises each sample over groups of channels: one mean and one variance
    per (sample, group), taken over the channels of the group and every
    spatial position (L, H x W or T x H x W), then applies a per-channel
    `gamma` and `beta`. No statistic depends on the other samples of the
    batch, so training and inference compute the same thing and there are no
    moving averages.

    Drops in wherever `keras.layers.BatchNormalization` stood: `call` takes
    (and ignores) `training` and `mask`; the mask is passed on to the next
    layer unchanged and does not enter the statistics. Drops in for
    `keras.layers.GroupNormalization` too: the same arguments in the same
    order give its outputs (mind the default epsilon below).

    Args:
      groups: number of groups G (default 32, the paper's best). `groups=1`
        is Layer Normalization over all non-batch axes; `groups=-1` one group
        per channel (Instance Normalization), as in Keras's layer.
      axis: channel axis, -1 (channels_last, default) or 1 (channels_first),
        or any other but the batch axis.
      epsilon: added to the variance (default 1e-5: the paper's, PyTorch's,
        timm's and detectron2's, and the published GN weights'; Keras's own
        GroupNormalization has 1e-3, see docs/layer.md).
      center: add the learned per-channel offset `beta` (default True).
      scale: multiply by the learned per-channel `gamma` (default True).
      beta_initializer, gamma_initializer, beta_regularizer,
      gamma_regularizer, beta_constraint, gamma_constraint: as for any Keras
        layer's weights.
      group_size: (keyword only) channels per group, instead of `groups`;
        `group_size=1` is Instance Normalization. Give `groups` or
        `group_size`, not both.
      fit_groups: (keyword only) where `groups` does not divide the channels,
        use gcd(channels, groups) groups instead of raising
        (`keras_gn.layers.fitted_groups` says why that rule). Default False.

    Input: a float tensor of rank 2 to 5 (`[N, C]`, `[N, L, C]`,
    `[N, H, W, C]`, `[N, T, H, W, C]`, or channels first), whose channel
    count is known; an empty batch (N = 0) is fine. Output: same shape, in
    the layer's compute dtype. Under `mixed_float16`/`mixed_bfloat16` the
    input is not cast to the compute dtype first: the statistics are
    computed in float32 from the input as given (a float32 input of 7e4 is
    normalised exactly, where float16 would overflow), and gamma and beta
    are kept in float32.

    On the TensorFlow backend the layer calls `keras_gn.ops.group_norm`,
    with its analytic gradient: a layer built with static sizes runs the
    XLA-compiled core inside graphs (`fit`, `predict`), compiled once per
    layer shape and batch size; eager calls, and a layer built with open
    sizes (`(None, None, C)`), run the same formula as a plain graph, so
    that a new input shape compiles nothing. Under `jit_compile=True` it is
    part of the model's own XLA program either way. On other backends the
    same formula runs in `keras.ops`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Under mixed precision the input reaches `call` in its own dtype
        # (Keras would round a float32 input to float16 first, which
        # overflows above 65504 and loses digits below): the statistics are
        # taken in float32 from the input as given, and the output is in the
        # compute dtype. Keras's own normalization layers do the same.
        self.autocast = False

    def build(self, input_shape):
        self._build_group_norm(input_shape)

    def _check_dtype(self, inputs):
        gn_ops.check_float(keras.backend.standardize_dtype(inputs.dtype), self.name)

    def call(self, inputs, training=None, mask=None):
        self._check_dtype(inputs)
        gamma = None if self.gamma is None else self.gamma.value
        beta = None if self.beta is None else self.beta.value
        if keras.backend.backend() == "tensorflow":
            outputs = self._group_norm(inputs, gamma, beta)
        else:
            outputs = gn_ops.keras_group_norm(inputs, gamma, beta, self._num_groups, self.axis, self.epsilon)
        return keras.ops.cast(outputs, self.compute_dtype)

    def compute_output_spec(self, inputs, training=None, mask=None):
        # Symbolic calls (functional models) skip `call`: check here too.
        self._check_dtype(inputs)
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="Addons", name="GroupNormalization")
class AddonsGroupNormalization(GroupNormalization):
    """Loads models saved with TensorFlow Addons' `tfa.layers.GroupNormalization`
    (config name "Addons>GroupNormalization"; Addons does not install beside
    TensorFlow 2.20): `keras.models.load_model("model.h5")` after
    `import keras_gn`, no `custom_objects` needed. Addons' arguments are
    ours (groups=32, axis=-1, epsilon, center, scale, initializers,
    regularizers, constraints) with its default epsilon, 1e-3; its weights
    are gamma then beta, as ours."""

    def __init__(self, *args, epsilon=1e-3, **kwargs):
        super().__init__(*args, epsilon=epsilon, **kwargs)


def layer_norm(**kwargs):
    """Layer Normalization as GN with one group (`groups=1`): statistics over
    all non-batch axes, per-channel gamma and beta. Other arguments as
    `GroupNormalization`."""
    return GroupNormalization(groups=1, **kwargs)


def instance_norm(**kwargs):
    """Instance Normalization as GN with one channel per group
    (`group_size=1`): statistics per (sample, channel) over the spatial axes.
    Other arguments as `GroupNormalization`."""
    return GroupNormalization(group_size=1, **kwargs)
