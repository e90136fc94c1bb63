"""Weight Standardization convolutions (keras_gn.conv) against independent
references: a plain PyTorch expression of the formula (float64, autograd) and
timm's `StdConv2d`; the gradient through the standardization; mixed
precision; the tf_keras twins; folding for export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gn import WSConv2D, WSConv3D, fold_weight_standardization
from keras_gn.conv import EPSILON

torch = pytest.importorskip("torch")
F = torch.nn.functional

# (rank, padding, strides, dilation, groups, data_format)
CASES = [
    (2, "valid", 1, 1, 1, "channels_last"),
    (2, "same", 1, 1, 1, "channels_last"),
    (2, "valid", 2, 1, 1, "channels_last"),
    (2, "same", 2, 1, 1, "channels_last"),
    (2, "same", 1, 2, 1, "channels_last"),
    (2, "valid", 1, 2, 2, "channels_last"),
    (2, "same", 2, 1, 2, "channels_last"),
    (2, "valid", 1, 1, 1, "channels_first"),
    (2, "same", 2, 1, 1, "channels_first"),
    (2, "same", 1, 2, 1, "channels_first"),
    (2, "same", 1, 1, 2, "channels_first"),
    (3, "valid", 1, 1, 1, "channels_last"),
    (3, "same", 1, 1, 1, "channels_last"),
    (3, "same", 2, 1, 1, "channels_last"),
    (3, "valid", 2, 1, 2, "channels_last"),
    (3, "same", 1, 2, 1, "channels_last"),
    (3, "same", 2, 1, 1, "channels_first"),
    (3, "same", 1, 1, 2, "channels_first"),
]


def _torch_ws_conv(x, kernel, bias, strides, padding, dilation, groups, epsilon, kernel_size):
    """The formula in plain PyTorch, channels first: w_hat per output
    channel over its fan-in (biased variance), then F.conv with TensorFlow's
    "same" padding (the extra pixel after, for even totals) done by F.pad."""
    rank = x.dim() - 2
    w = kernel.permute(rank + 1, rank, *range(rank))  # Keras [*k, in, out] -> torch [out, in, *k]
    axes = tuple(range(1, rank + 2))
    centered = w - w.mean(dim=axes, keepdim=True)
    w_hat = centered / torch.sqrt((centered**2).mean(dim=axes, keepdim=True) + epsilon)
    if padding == "same":
        pads = []
        for size, k in zip(reversed(x.shape[2:]), reversed(kernel_size)):
            effective = (k - 1) * dilation + 1
            out = -(-size // strides)
            total = max((out - 1) * strides + effective - size, 0)
            pads += [total // 2, total - total // 2]
        x = F.pad(x, pads)
    conv = F.conv2d if rank == 2 else F.conv3d
    return conv(x, w_hat, bias, stride=strides, dilation=dilation, groups=groups)


def _with_gradients(layer, x, cotangent, offset=0.0):
    """layer(x) + offset and the gradients of sum((layer(x) + offset) *
    cotangent) for x and the kernel, XLA-compiled: TensorFlow's eager CPU
    Conv2D takes channels_first only where oneDNN is on (CPUs with AVX-512),
    so the layer runs here as it does in a compiled training step."""

    @tf.function(jit_compile=True)
    def step(x, cotangent):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x) + offset
            loss = tf.reduce_sum(y * cotangent)
        dx, dw = tape.gradient(loss, [x, layer.kernel])
        return y, dx, dw

    return step(x, cotangent)


def _relative_error(ours, reference):
    reference = np.asarray(reference, np.float64)
    return np.max(np.abs(np.asarray(ours, np.float64) - reference)) / np.max(np.abs(reference))


@pytest.mark.parametrize("rank,padding,strides,dilation,groups,data_format", CASES)
def test_outputs_and_gradients_match_pytorch(rank, padding, strides, dilation, groups, data_format):
    rng = np.random.default_rng(rank * 100 + strides * 10 + dilation + groups)
    spatial = (9, 8) if rank == 2 else (5, 6, 7)
    kernel_size = (3,) * rank
    channels, filters = 4, 6
    # TF 2.20's CPU channels_first Conv2D with a bias is wrong (an upstream
    # defect, plain keras.layers.Conv2D too: off by 0.07 on outputs of 3 here,
    # with dilation 1 as well as 2): the bias is tested in channels_last.
    use_bias = data_format == "channels_last"
    shape = (2, *spatial, channels) if data_format == "channels_last" else (2, channels, *spatial)
    x = rng.normal(size=shape).astype(np.float32)
    cls = WSConv2D if rank == 2 else WSConv3D
    layer = cls(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        groups=groups,
        data_format=data_format,
        use_bias=use_bias,
        bias_initializer="random_normal",
    )
    layer.build(shape)
    kernel = rng.normal(0.1, 0.5, layer.kernel.shape).astype(np.float32)  # a mean far from 0
    layer.kernel.assign(kernel)

    cotangent = tf.constant(rng.normal(size=layer.compute_output_shape(shape)).astype(np.float32))
    y, dx, dw = _with_gradients(layer, tf.constant(x), cotangent)

    x64 = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    w64 = torch.tensor(kernel, dtype=torch.float64, requires_grad=True)
    b64 = torch.tensor(layer.bias.numpy(), dtype=torch.float64) if use_bias else None
    x_cf = x64 if data_format == "channels_first" else x64.permute(0, rank + 1, *range(1, rank + 1))
    ref = _torch_ws_conv(x_cf, w64, b64, strides, padding, dilation, groups, EPSILON, kernel_size)
    if data_format == "channels_last":
        ref = ref.permute(0, *range(2, rank + 2), 1)
    assert tuple(ref.shape) == tuple(y.shape)
    (ref * torch.tensor(cotangent.numpy(), dtype=torch.float64)).sum().backward()

    assert _relative_error(y, ref.detach().numpy()) < 1e-5
    assert _relative_error(dx, x64.grad.numpy()) < 1e-5
    assert _relative_error(dw, w64.grad.numpy()) < 1e-5


TIMM_SCRIPT = """
import sys
import numpy as np, torch
from timm.layers import StdConv2d
rng = np.random.default_rng(1)
x = rng.normal(size=(2, 8, 11, 11)).astype(np.float32)
std = StdConv2d(8, 16, 3, stride=2, padding=1, bias=True, eps=1e-6)
with torch.no_grad():
    std.weight.copy_(torch.tensor(rng.normal(0.05, 0.2, (16, 8, 3, 3)), dtype=torch.float32))
    std.bias.copy_(torch.tensor(rng.normal(size=16), dtype=torch.float32))
xt = torch.tensor(x, requires_grad=True)
y = std(xt)
cotangent = rng.normal(size=y.shape).astype(np.float32)
(y * torch.tensor(cotangent)).sum().backward()
np.savez(sys.argv[1], x=x, weight=std.weight.detach().numpy(), bias=std.bias.detach().numpy(), y=y.detach().numpy(),
         cotangent=cotangent, dx=xt.grad.numpy(), dweight=std.weight.grad.numpy())
"""


def test_matches_timms_stdconv2d(tmp_path):
    """timm's own layer, run in a process of its own (torchvision, which
    timm imports, crashes a process that loaded TensorFlow first)."""
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed")
    path = str(tmp_path / "timm.npz")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", TIMM_SCRIPT, path], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ref = np.load(path)

    # timm pads 1 on each side; "valid" on an explicitly padded input is the same.
    layer = WSConv2D(16, 3, strides=2, padding="valid", data_format="channels_first", use_bias=False, epsilon=1e-6)
    padded = tf.constant(np.pad(ref["x"], ((0, 0), (0, 0), (1, 1), (1, 1))))
    layer.build(padded.shape)
    layer.set_weights([ref["weight"].transpose(2, 3, 1, 0)])
    # The bias added here: TF's CPU channels_first Conv2D adds it wrongly (see above).
    bias = tf.constant(ref["bias"][:, None, None])
    y, dx_padded, dw = _with_gradients(layer, padded, tf.constant(ref["cotangent"]), offset=bias)
    assert _relative_error(y, ref["y"]) < 1e-5
    assert _relative_error(dx_padded[:, :, 1:-1, 1:-1], ref["dx"]) < 1e-5
    assert _relative_error(dw, ref["dweight"].transpose(2, 3, 1, 0)) < 1e-5


@pytest.mark.parametrize("cls", [WSConv2D, WSConv3D])
def test_std_convention_is_the_ws_authors_formula(cls):
    """`convention="std"`: (w - mean) / (unbiased std + 1e-5), as the WS
    authors' code and mmcv's ConvWS compute it (torch's `Tensor.std` is the
    unbiased one), against that expression in float64 PyTorch."""
    rng = np.random.default_rng(6)
    rank = 2 if cls is WSConv2D else 3
    shape = (2, *(7,) * rank, 4)
    x = rng.normal(size=shape).astype(np.float32)
    layer = cls(6, 3, groups=2, use_bias=False, convention="std")
    assert layer.epsilon == 1e-5 and layer.get_config()["convention"] == "std"
    layer.build(shape)
    kernel = rng.normal(0.0, 0.02, layer.kernel.shape).astype(np.float32)  # small: epsilon matters
    layer.kernel.assign(kernel)
    w = torch.tensor(kernel, dtype=torch.float64).permute(rank + 1, rank, *range(rank))
    flat = w.reshape(w.shape[0], -1)
    w_hat = (w - flat.mean(1).reshape(-1, *[1] * (rank + 1))) / (flat.std(1).reshape(-1, *[1] * (rank + 1)) + 1e-5)
    conv = F.conv2d if rank == 2 else F.conv3d
    ref = conv(torch.tensor(np.moveaxis(x, -1, 1), dtype=torch.float64), w_hat, groups=2)
    assert _relative_error(layer(x), np.moveaxis(ref.numpy(), 1, -1)) < 1e-5
    # The default convention on the same kernel differs by more than rounding.
    default = cls(6, 3, groups=2, use_bias=False)
    default.build(shape)
    default.kernel.assign(kernel)
    assert _relative_error(default(x), np.moveaxis(ref.numpy(), 1, -1)) > 1e-4
    with pytest.raises(ValueError, match="convention must be 'variance'"):
        cls(6, 3, convention="unbiased")


def test_gradient_flows_through_the_standardization():
    """The kernel's gradient is the gradient of w_hat carried back through
    the standardization: zero mean and orthogonal to w_hat per output
    channel (the output cannot change with the kernel's shift or scale). A
    kernel constraint, or a convolution that applies w_hat as a constant,
    gives the gradient of w_hat itself, which has neither property."""
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(2, 7, 7, 3)).astype(np.float32))
    layer = WSConv2D(5, 3, use_bias=False)
    layer.build(x.shape)
    layer.kernel.assign(rng.normal(0.3, 0.7, layer.kernel.shape).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) ** 2)
    dw = tape.gradient(loss, layer.kernel).numpy().reshape(-1, 5).astype(np.float64)

    w = layer.kernel.numpy().reshape(-1, 5).astype(np.float64)
    w_hat = (w - w.mean(0)) / np.sqrt(w.var(0) + EPSILON)
    plain = keras.layers.Conv2D(5, 3, use_bias=False)
    plain.build(x.shape)
    plain.kernel.assign(w_hat.reshape(layer.kernel.shape).astype(np.float32))
    with tf.GradientTape() as tape:
        plain_loss = tf.reduce_sum(plain(x) ** 2)
    g_hat = tape.gradient(plain_loss, plain.kernel).numpy().reshape(-1, 5).astype(np.float64)
    np.testing.assert_allclose(float(loss), float(plain_loss), rtol=1e-5)

    scale = np.abs(dw).max()
    assert scale > 1e-2  # a gradient reaches the kernel
    np.testing.assert_allclose(dw.sum(0), 0, atol=1e-5 * scale * len(w))
    np.testing.assert_allclose((dw * w_hat).sum(0), 0, atol=1e-5 * scale * len(w))
    # The chain rule through the standardization, from the plain convolution's gradient of w_hat:
    expected = (g_hat - g_hat.mean(0) - w_hat * (g_hat * w_hat).mean(0)) / np.sqrt(w.var(0) + EPSILON)
    np.testing.assert_allclose(dw, expected, rtol=1e-4, atol=1e-5 * scale)
    assert np.abs(g_hat.sum(0)).max() > 1e-2 * np.abs(g_hat).max()  # a constraint-style gradient fails above


@pytest.mark.parametrize("policy,tolerance", [("mixed_float16", 4e-3), ("mixed_bfloat16", 3e-2)])
@pytest.mark.parametrize("cls", [WSConv2D, WSConv3D])
def test_mixed_precision_standardizes_in_float32(policy, tolerance, cls):
    rng = np.random.default_rng(3)
    shape = (2, 8, 8, 4) if cls is WSConv2D else (2, 4, 6, 6, 4)
    x = rng.normal(size=shape).astype(np.float32)
    reference = cls(8, 3, padding="same")
    reference.build(shape)
    # A kernel whose mean is large against its spread: standardizing it in
    # float16 or bfloat16 would lose most of its digits.
    kernel = (50.0 + 0.01 * rng.normal(size=reference.kernel.shape)).astype(np.float32)
    reference.set_weights([kernel, np.zeros(8, np.float32)])
    mixed = cls(8, 3, padding="same", dtype=policy)
    mixed.build(shape)
    mixed.set_weights(reference.get_weights())
    assert mixed.kernel.dtype == "float32" and mixed.compute_dtype == policy.split("_")[1]
    call = tf.function(mixed, jit_compile=True)  # TF's CPU has no float16 Conv3D kernel; XLA has
    y = call(tf.constant(x))
    assert y.dtype == policy.split("_")[1]
    # The kernel it applies: the float32 standardization, rounded once to the compute dtype.
    w = kernel.reshape(-1, 8).astype(np.float64)
    w_hat = ((w - w.mean(0)) / np.sqrt(w.var(0) + EPSILON)).reshape(kernel.shape)
    np.testing.assert_allclose(mixed.standardized_kernel(), w_hat, atol=1e-3)
    assert _relative_error(np.asarray(y, np.float32), reference(x).numpy()) < tolerance


def test_arguments_config_and_errors():
    layer = WSConv2D(4, 3, strides=2, padding="same", dilation_rate=1, groups=2, use_bias=False, epsilon=1e-10)
    config = layer.get_config()
    assert config["epsilon"] == 1e-10 and config["groups"] == 2 and config["padding"] == "same"
    clone = WSConv2D.from_config(config)
    assert clone.get_config() == config
    assert WSConv2D(4, 3).epsilon == EPSILON == 1e-6
    assert isinstance(layer, keras.layers.Conv2D)
    for bad in (0, -1e-5, "small", True):
        with pytest.raises(ValueError, match="epsilon must be a positive number"):
            WSConv2D(4, 3, epsilon=bad)


def test_tf_keras_twin_matches_the_keras_layer():
    tf_keras = pytest.importorskip("tf_keras")
    from keras_gn import legacy

    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 9, 9, 4)).astype(np.float32)
    ours = WSConv2D(6, 3, strides=2, padding="same", groups=2, bias_initializer="random_normal")
    ours.build(x.shape)
    twin = legacy.WSConv2D(6, 3, strides=2, padding="same", groups=2)
    twin.build(x.shape)
    twin.set_weights(ours.get_weights())
    assert isinstance(twin, tf_keras.layers.Conv2D)
    np.testing.assert_allclose(twin(x).numpy(), ours(x).numpy(), rtol=1e-6, atol=1e-6)
    mixed = legacy.WSConv3D(6, 3, padding="same", dtype="mixed_float16")
    mixed.build((2, 4, 6, 6, 4))
    assert mixed.kernel.dtype == tf.float32
    assert tf.function(mixed, jit_compile=True)(tf.zeros((2, 4, 6, 6, 4))).dtype == tf.float16
    assert legacy.WSConv2D.from_config(twin.get_config()).get_config() == twin.get_config()


def test_fold_gives_plain_convolutions_with_the_same_outputs():
    rng = np.random.default_rng(5)
    inputs = keras.Input((10, 10, 3))
    h = WSConv2D(8, 3, padding="same", name="ws")(inputs)
    h = keras.layers.ReLU()(h)
    inner = keras.Sequential([keras.Input((10, 10, 8)), WSConv2D(8, 1, name="inner_ws")], name="inner")
    h = inner(h)
    h = keras.layers.Conv2D(4, 3, name="plain")(h)
    model = keras.Model(inputs, h)
    for w in model.weights:
        w.assign(rng.normal(0.2, 1.0, w.shape).astype(np.float32))
    folded = fold_weight_standardization(model)
    flat = [l for l in folded._flatten_layers(include_self=False) if isinstance(l, keras.layers.Conv2D)]
    assert len(flat) == 3 and not any(type(l).__name__.startswith("WS") for l in flat)
    x = rng.normal(size=(3, 10, 10, 3)).astype(np.float32)
    np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5 * np.abs(model(x)).max())
    # The original keeps its WS layers and its raw kernels.
    assert isinstance(model.get_layer("ws"), WSConv2D)
    kernel = model.get_layer("ws").kernel.numpy().reshape(-1, 8).astype(np.float64)
    expected = (kernel - kernel.mean(0)) / np.sqrt(kernel.var(0) + EPSILON)
    np.testing.assert_allclose(folded.get_layer("ws").kernel.numpy().reshape(-1, 8), expected, atol=1e-5)


def test_exported_savedmodel_serves_the_same_outputs(tmp_path):
    """`model.export` (a SavedModel for TF Serving / TFLite) of a WS model
    and of its folded copy: the served function gives the Keras outputs."""
    rng = np.random.default_rng(7)
    inputs = keras.Input((9, 9, 3))
    model = keras.Model(inputs, WSConv2D(4, 3, strides=2, padding="same", bias_initializer="random_normal")(inputs))
    x = rng.normal(size=(2, 9, 9, 3)).astype(np.float32)
    expected = model(x).numpy()
    for name, subject in (("ws", model), ("folded", fold_weight_standardization(model))):
        subject.export(str(tmp_path / name), verbose=False)
        loaded = tf.saved_model.load(str(tmp_path / name))  # kept: its variables live as long as it does
        np.testing.assert_allclose(loaded.serve(tf.constant(x)).numpy(), expected, rtol=1e-5, atol=1e-5)
