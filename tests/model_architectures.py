"""The builders' architectures as data: every weight's name and shape, the
layer order and, for the small models, the output for fixed weights.

`tests/data/architectures.json` holds them with TensorFlow's "same"
padding; `test_architecture.py` checks that the builders still make exactly
these models with `padding="same"`, and that their default symmetric
padding (for published weights) differs from them only by the padding. Regenerate
it only on purpose:

    python -c "import sys; sys.path.insert(0, 'tests'); import model_architectures as m; m.write()"
"""

import json
import os

import numpy as np

PATH = os.path.join(os.path.dirname(__file__), "data", "architectures.json")


def _resnet(**kwargs):
    from keras_gn.models import resnet

    return lambda: resnet(**kwargs)


def _i3d(**kwargs):
    from keras_gn.models import i3d_resnet

    return lambda: i3d_resnet(**kwargs)


def _res5(padding="symmetric"):
    from keras_gn.detection.heads import res5

    return res5(depth=50, norm="gn", groups=32, crop_size=14, in_channels=1024, padding=padding)


# name -> (builder of its arguments, those arguments but the padding)
ARGUMENTS = {
    "resnet50_gn": (_resnet, dict(depth=50, norm="gn")),
    "resnet101_bn_channels_first": (_resnet, dict(depth=101, norm="bn", data_format="channels_first")),
    "resnet14_small_bn_wd": (
        _resnet,
        dict(depth=14, width=8, stem="small", input_shape=(16, 16, 1), num_classes=10, norm="bn", weight_decay=1e-4),
    ),
    "resnet11_small_gn4": (
        _resnet,
        dict(depth=11, width=8, stem="small", input_shape=(12, 12, 2), num_classes=3, groups=4),
    ),
    "resnet50_tf_keras_endpoints": (
        _resnet,
        dict(depth=50, norm="frozen_bn", framework="tf_keras", endpoints=True, include_top=False, decay_norms=False),
    ),
    "resnet8_tf_keras_gn_endpoints": (
        _resnet,
        dict(
            depth=8,
            width=8,
            norm="gn",
            groups=4,
            framework="tf_keras",
            endpoints=True,
            include_top=False,
            input_shape=(32, 32, 3),
            stages=(1, 2),
        ),
    ),
    "res5_c4": (lambda **kwargs: lambda: _res5(**kwargs), {}),
    "i3d50_gn": (_i3d, dict(depth=50, norm="gn", input_shape=(8, 64, 64, 3))),
    "i3d14_edge_gn4": (
        _i3d,
        dict(
            depth=14, width=8, norm="gn", groups=4, input_shape=(4, 16, 16, 3), num_classes=5, temporal_padding="edge"
        ),
    ),
}
# The builders as they were: TensorFlow's padding.
CASES = {name: builder(padding="same", **arguments) for name, (builder, arguments) in ARGUMENTS.items()}
# Today's default, symmetric padding: the same models but for the padding.
SYMMETRIC = {name: builder(**arguments) for name, (builder, arguments) in ARGUMENTS.items()}

# Small enough to run: their output for weights drawn from a fixed seed.
RUN = ("resnet14_small_bn_wd", "resnet11_small_gn4", "resnet8_tf_keras_gn_endpoints", "i3d14_edge_gn4")


def _output_sums(model):
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") * 0.2 for w in model.get_weights()])
    shape = [2] + [int(d) for d in model.inputs[0].shape[1:]]
    y = model(rng.normal(size=shape).astype("float32"), training=False)
    outputs = y.values() if isinstance(y, dict) else [y]
    return [float(np.asarray(o, np.float64).sum()) for o in outputs]


def describe(model, run=False):
    weights = model.weights
    out = {
        "name": model.name,
        "layers": [layer.name for layer in model.layers],
        "weights": [[getattr(w, "path", None) or w.name, list(w.shape), bool(w.trainable)] for w in weights],
        "params": int(model.count_params()),
        "losses": len(model.losses),
    }
    if run:
        out["output_sums"] = _output_sums(model)
    return out


def write():
    out = {name: describe(build(), run=name in RUN) for name, build in CASES.items()}
    with open(PATH, "w") as f:
        json.dump(out, f, indent=0, sort_keys=True)
