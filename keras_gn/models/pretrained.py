"""Published ImageNet GN ResNets in our models: one reader per weight format,
one name map per source.

    model = keras_gn.models.load_pretrained("R-50-GN.pkl")           # Detectron (the paper's authors)
    model = keras_gn.models.load_pretrained("model.safetensors")     # timm resnet50_gn
    model = keras_gn.models.load_pretrained("R-50-GN-WS.pth.tar")    # the WS authors' GN+WS
    logits = model(keras_gn.models.preprocess(uint8_rgb_images, model))

- "detectron": the paper's authors' Caffe2 pickles (`R-50-GN.pkl`,
  `R-101-GN.pkl`; also detectron2's `ImageNetPretrained/FAIR/R-50-GN`): a
  dict of NumPy arrays, flat or under "blobs", named `conv1_w`,
  `conv1_gn_{s,b}`, `res{2-5}_{i}_branch2{a,b,c}_w` and `_gn_{s,b}`,
  `res{k}_0_branch1_*`, `pred_{w,b}`. Input: BGR, 0-255, minus the pixel
  means [102.9801, 115.9465, 122.7717].
- "timm": `resnet50_gn` state dicts (`.pth`, `.safetensors`), and any
  torchvision/timm-named GN ResNet of our depths (ResNet-18 and -34 with
  their basic blocks too): `conv1.weight`, `bn1.*`,
  `layer{L}.{B}.conv{1,2,3}.weight`, `bn{1,2,3}.*`,
  `layer{L}.0.downsample.{0,1}.*`, `fc.*`. Input: RGB in [0, 1] minus
  ImageNet's mean, divided by its std.
- "ws": the WS authors' `R-50-GN-WS.pth.tar`: torchvision names under
  "state_dict" with a "module." prefix; WS in every convolution with their
  formula (`convention="std"`). Input: as timm.

All are ResNet v1 with the stride on the 3x3 convolution, GN with 32 groups
and epsilon 1e-5, padded symmetrically: exactly `keras_gn.models.resnet(depth,
norm="gn")` with its default padding. The depth and the block type (a
third convolution or not) are read from the weights.

Weight files are untrusted input. Detectron pickles are read by an unpickler
that admits only what such files hold (NumPy arrays, dtypes and scalars, and
the containers and codecs of their pickle protocol) and refuses any other
global before it is loaded; `.pth` files by `torch.load(..., weights_only=True)`
(PyTorch's own restricted unpickler; torch is needed for them only:
`pip install torch`); `.safetensors` by the `safetensors` package's NumPy
reader, with no torch. Nothing in a file is executed.
"""

import io
import os
import pickle
import re

import numpy as np

from keras_gn.data.images import IMAGENET_MEAN, IMAGENET_STD
from keras_gn.models.resnet import STAGE_SIZES, block_type, resnet

__all__ = ["load_pretrained", "read_weights", "preprocess", "pretrained_source", "SOURCES", "WeightFileError"]

SOURCES = ("detectron", "timm", "ws")
DETECTRON_PIXEL_MEANS_BGR = (102.9801, 115.9465, 122.7717)


class WeightFileError(ValueError):
    """A weight file that cannot be read, or does not fit the model: the
    message is one line naming the file and what is wrong."""


# What a Detectron (Caffe2) pickle may load: NumPy's array and scalar
# reconstruction (its module moved in NumPy 2), dtypes, and what Python 2's
# protocol uses for bytes and dicts.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refused to load the global {module}.{name}: a weight file holds arrays only "
                f"(allowed: {', '.join(sorted(f'{m}.{n}' for m, n in _ALLOWED_GLOBALS))})"
            )
        return super().find_class(module, name)


def _read_pickle(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as error:
        raise WeightFileError(f"{path}: {error}.") from None


def _read_torch(path):
    try:
        import torch
    except ImportError:
        raise WeightFileError(
            f"{path}: reading a PyTorch file needs torch (pip install torch); "
            "a .safetensors file of the same weights needs only the safetensors package."
        ) from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()
        reason = next((line for line in first if "GLOBAL" in line or "global" in line), first[0] if first else "")
        raise WeightFileError(f"{path}: refused by torch.load(weights_only=True): {reason.strip()}") from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    return {k: v.detach().cpu().numpy() if hasattr(v, "detach") else v for k, v in data.items()}


def _read_safetensors(path):
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise WeightFileError(f"{path}: reading .safetensors needs the safetensors package.") from None
    return load_file(path)


def read_weights(path, source=None):
    """({name: float32 NumPy array}, source) from a weight file: names as the
    file has them, minus the WS authors' "module." prefix; Detectron's
    "blobs" unwrapped, its `*_momentum` and non-array entries dropped.
    `source` (one of `SOURCES`) is detected from the names when None."""
    if not os.path.isfile(path):
        raise WeightFileError(f"{path}: no such file.")
    if source is not None and source not in SOURCES:
        raise WeightFileError(f"source must be one of {', '.join(SOURCES)}; got {source!r}.")
    lower = path.lower()
    if lower.endswith(".pkl"):
        raw = _read_pickle(path)
    elif lower.endswith(".safetensors"):
        raw = _read_safetensors(path)
    elif lower.endswith((".pth", ".pt", ".pth.tar", ".bin")):
        raw = _read_torch(path)
    else:
        raise WeightFileError(f"{path}: unknown format; expected .pkl (Detectron), .safetensors, .pth or .pth.tar.")
    if not isinstance(raw, dict):
        raise WeightFileError(f"{path}: expected a dict of named arrays; got a {type(raw).__name__}.")
    if isinstance(raw.get("blobs"), dict):
        raw = raw["blobs"]
    prefixed = bool(raw) and all(isinstance(k, str) and k.startswith("module.") for k in raw)
    weights = {}
    for name, value in raw.items():
        if not isinstance(name, str) or name.endswith("_momentum") or name.endswith("num_batches_tracked"):
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            weights[name[len("module.") :] if prefixed else name] = value.astype(np.float32)
    if source is None:
        if "conv1_w" in weights:
            source = "detectron"
        elif "conv1.weight" in weights:
            source = "ws" if prefixed else "timm"
        else:
            raise WeightFileError(
                f"{path}: neither Detectron (conv1_w) nor torchvision/timm (conv1.weight) names; "
                "is it a ResNet's weights?"
            )
    return weights, source


def _names(source, stage, block, part):
    """The file's name for our `part` of block `block` (0-based) of stage
    `stage` (1 = res2): part is "conv1".."conv3", "norm1".."norm3",
    "proj_conv" or "proj_norm"; a norm name is a prefix for scale and bias."""
    if source == "detectron":
        branch = {"conv1": "2a", "conv2": "2b", "conv3": "2c", "proj_conv": "1"}
        base = f"res{stage + 1}_{block}_branch"
        if part in branch:
            return f"{base}{branch[part]}_w"
        if part.startswith("norm"):
            return f"{base}{branch['conv' + part[-1]]}_gn_"
        return f"{base}1_gn_"
    base = f"layer{stage}.{block}."
    torch_names = {"proj_conv": "downsample.0.weight", "proj_norm": "downsample.1."}
    if part in torch_names:
        return base + torch_names[part]
    if part.startswith("conv"):
        return f"{base}{part}.weight"
    return f"{base}bn{part[-1]}."


def _top(source):
    """The file's names of the classifier's kernel and bias."""
    return ("pred_w", "pred_b") if source == "detectron" else ("fc.weight", "fc.bias")


def _scale_bias(source, prefix):
    return (prefix + "s", prefix + "b") if source == "detectron" else (prefix + "weight", prefix + "bias")


def _stage_sizes(weights, source):
    sizes = []
    for stage in range(1, 5):
        blocks = 0
        while _names(source, stage, blocks, "conv1") in weights:
            blocks += 1
        sizes.append(blocks)
    return sizes


def _kernel(array):
    return np.transpose(array, (2, 3, 1, 0))  # [out, in, kh, kw] (torch, Caffe2) -> Keras [kh, kw, in, out]


def _assignments(model, weights, source):
    """[(layer, [arrays])] for every weighted layer of `model`, and the file
    names used; a missing name raises."""
    used, plan = set(), []

    def take(name):
        if name not in weights:
            raise KeyError(name)
        used.add(name)
        return weights[name]

    for layer in model.layers:
        if not layer.weights:
            continue
        name = layer.name
        if name == "logits":
            w, b = _top(source)
            plan.append((layer, [take(w).T, take(b)]))
            continue
        if name.startswith("stem_"):
            conv, norm = ("conv1_w", "conv1_gn_") if source == "detectron" else ("conv1.weight", "bn1.")
            if name == "stem_conv":
                plan.append((layer, [_kernel(take(conv))]))
            else:
                plan.append((layer, [take(n) for n in _scale_bias(source, norm)]))
            continue
        match = re.fullmatch(r"stage(\d)_block(\d+)_(conv1|conv2|conv3|norm1|norm2|norm3|proj_conv|proj_norm)", name)
        if match is None:
            raise KeyError(f"our layer {name}")
        stage, block, part = int(match[1]), int(match[2]) - 1, match[3]
        file_name = _names(source, stage, block, part)
        if "conv" in part:
            plan.append((layer, [_kernel(take(file_name))]))
        else:
            plan.append((layer, [take(n) for n in _scale_bias(source, file_name)]))
    return plan, used


def load_pretrained(path, source=None, include_top=True, dtype=None, input_shape=None, data_format="channels_last"):
    """A `keras_gn.models.ResNet` holding the published weights in `path`.

    Args:
      path: a weight file of one of `SOURCES` (see the module docstring):
        `.pkl` (Detectron), `.safetensors` or `.pth` (timm), `.pth.tar`
        (the WS authors); or a Big Transfer `.npz` (`BiT-M-R50x1.npz`...),
        which gives a `keras_gn.models.bit.BiTResNet` (`load_bit`).
      source: "detectron", "timm" or "ws"; None detects it from the names
        (a torchvision-named file with the "module." prefix is "ws"; pass
        `source="ws"` for one saved without it).
      include_top: keep the classifier (global pooling and the 1000-class
        layer); False ends in the res5 feature map.
      dtype: the layers' dtype policy (None: the global one).
      input_shape: the image shape without the batch; default (None, None,
        3): any size, as the paper's code takes any; a fixed size, e.g.
        (224, 224, 3), gives every layer a static shape.
      data_format: "channels_last" (default) or "channels_first".

    Returns:
      The model; its `pretrained` attribute (kept in its config beside the
      architecture's arguments, as timm's `pretrained_cfg`) records the
      source and file name, for `preprocess`. Raises
      `WeightFileError` (one line) when the file cannot be read safely or
      does not fit: the first missing and the first unused tensors.
    """
    if str(path).lower().endswith(".npz"):  # Big Transfer's published ResNetV2 weights
        from keras_gn.models.bit import load_bit

        if data_format != "channels_last" or source not in (None, "bit"):
            raise WeightFileError(f"{path}: a BiT .npz loads channels_last, as source 'bit' (or None).")
        return load_bit(path, include_top=include_top, input_shape=input_shape or (None, None, 3), dtype=dtype)
    weights, source = read_weights(path, source)
    sizes = _stage_sizes(weights, source)
    # A bottleneck block has a third convolution; a basic block (ResNet-18, -34) has two.
    block = "bottleneck" if _names(source, 1, 0, "conv3") in weights else "basic"
    depth = next(
        (d for d, s in STAGE_SIZES.items() if list(s) == sizes and len(s) == 4 and block_type(d) == block), None
    )
    if depth is None:
        known = sorted(d for d in STAGE_SIZES if block_type(d) == block and len(STAGE_SIZES[d]) == 4)
        raise WeightFileError(f"{path}: {sizes} {block} blocks per stage are no ResNet's we build (depths {known}).")
    top = _top(source)
    if include_top and top[0] not in weights:
        raise WeightFileError(f"{path}: no classifier ({top[0]}); load it with include_top=False.")
    num_classes = weights[top[0]].shape[0] if top[0] in weights else 1000
    if input_shape is None:  # open sizes, as keras-hub's backbones and timm's models take any
        input_shape = (None, None, 3) if data_format == "channels_last" else (3, None, None)
    model = resnet(
        depth,
        norm="gn",
        groups=32,
        epsilon=1e-5,
        include_top=include_top,
        num_classes=num_classes,
        input_shape=input_shape,
        data_format=data_format,
        dtype=dtype,
        weight_standardization="std" if source == "ws" else False,
    )
    model.pretrained = {"source": source, "file": os.path.basename(str(path))}
    try:
        plan, used = _assignments(model, weights, source)
    except KeyError as error:
        raise WeightFileError(
            f"{path}: missing {error.args[0]} (read as {source}, ResNet-{depth}); is it a GN ResNet of that source?"
        ) from None
    unused = sorted(set(weights) - used - (set() if include_top else set(top)))
    if unused:
        raise WeightFileError(
            f"{path}: {len(unused)} tensors not used by the {source} ResNet-{depth}, first {unused[:3]}; "
            "is it a GN ResNet of that source?"
        )
    for layer, arrays in plan:
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if expected != [a.shape for a in arrays]:
            raise WeightFileError(
                f"{path}: layer {layer.name} expects {expected}, the file has {[a.shape for a in arrays]}."
            )
        layer.set_weights(arrays)
    return model


def pretrained_source(model):
    """The source of `model`'s published weights ("detectron", "timm", "ws",
    "bit"), from its `pretrained` attribute; "bit" for any BiT ResNetV2
    (they all take BiT's input); None for a model of no published weights."""
    from keras_gn.models.bit import BiTResNet

    pretrained = getattr(model, "pretrained", None) or {}
    if pretrained.get("source"):
        return pretrained["source"]
    return "bit" if isinstance(model, BiTResNet) else None


def preprocess(images, source, data_format="channels_last"):
    """Maps uint8 RGB images ([N, H, W, 3], or channels first) to what a
    model of `source` expects: float32 BGR minus Detectron's pixel means for
    "detectron"; RGB in [0, 1] minus ImageNet's mean, divided by its std, for
    "timm" and "ws"; RGB in [-1, 1] for "bit". `source` is one of those
    names, or a model: one from `load_pretrained` (its `pretrained`
    attribute says the source), or any `keras_gn.models.bit_resnet` ("bit")."""
    if not isinstance(source, str):
        source = pretrained_source(source)
    if source not in SOURCES + ("bit",):
        raise ValueError(
            f"source must be one of {', '.join(SOURCES + ('bit',))} (or a model loaded with it); got {source!r}."
        )
    x = np.asarray(images, np.float32)
    axis = -1 if data_format == "channels_last" else 1
    if x.shape[axis] != 3:
        raise ValueError(f"preprocess expects RGB images with 3 channels on axis {axis}; got shape {x.shape}.")
    shape = [1] * x.ndim
    shape[axis] = 3
    if source == "detectron":
        return np.flip(x, axis) - np.reshape(DETECTRON_PIXEL_MEANS_BGR, shape).astype(np.float32)
    if source == "bit":  # BiT: RGB in [-1, 1]
        return x / np.float32(127.5) - np.float32(1.0)
    mean = np.reshape(IMAGENET_MEAN, shape).astype(np.float32)
    std = np.reshape(IMAGENET_STD, shape).astype(np.float32)
    return (x / 255.0 - mean) / std
