r"""keras-gn-convert-backbone: an ImageNet model from keras-gn-imagenet (Keras
3) into the Model Garden backbone checkpoint the Mask R-CNN experiments start
from.

    keras-gn-convert-backbone --keras_model=runs/r50_gn_32/model.keras --output=runs/r50_gn_backbone/ckpt
    keras-gn-convert-backbone --keras_model=runs/r50_bn_32/model.keras \
        --output=runs/r50_bn_backbone/ckpt      # BN becomes frozen_bn; --norm=syncbn to train it

Depth, norm and groups are read from the model (it keeps its builder's
arguments); --depth, --norm and --groups override them. A GN+WS model
(--weight_standardization) gives a GN+WS backbone, the start of the
maskrcnn_r50fpn_gn_ws_coco experiment:

    keras-gn-convert-backbone --keras_model=runs/r50_gn_ws_32/model.keras --output=runs/r50_gn_ws_backbone/ckpt

The checkpoint holds the whole ResNet (res2-res5): the FPN experiments load
it into their backbone, the C4 ones into their res2-res4 backbone and their
res5 box head. The logic lives in keras_gn.detection.convert.
"""

import os

from absl import flags

from keras_gn.apps import launch
from keras_gn.train import runs

FLAGS = flags.FLAGS
flags.DEFINE_string("keras_model", None, "model.keras written by keras-gn-imagenet.", required=True)
flags.DEFINE_string("output", None, "Checkpoint prefix to write, e.g. runs/r50_gn_backbone/ckpt.", required=True)
flags.DEFINE_enum(
    "norm", None, ["gn", "frozen_bn", "bn", "syncbn"],
    "The backbone's normalization in the detector (default: the model's own; frozen_bn for a BN model).",
)  # fmt: skip
flags.DEFINE_integer("depth", None, "ResNet depth (default: the model's own).")
flags.DEFINE_integer("groups", None, "GN groups (default: the model's own).", lower_bound=1)
flags.DEFINE_integer("input_size", 1024, "The detector's square input side.", lower_bound=32)


def _main(argv):
    del argv
    from keras_gn.detection.convert import write_backbone_checkpoint

    with launch.usage_errors():
        runs.check_writable(os.path.dirname(FLAGS.output) or ".", "--output", remote=True)
    with launch.usage_errors():
        path = write_backbone_checkpoint(
            FLAGS.keras_model, FLAGS.output, FLAGS.depth, FLAGS.norm, FLAGS.groups, FLAGS.input_size
        )
    print(
        f"Wrote {path}; use it as --init_checkpoint of the FPN and C4 experiments (init_checkpoint_modules=backbone)."
    )


def main():
    launch.run(_main, name="keras-gn-convert-backbone", doc=__doc__)


if __name__ == "__main__":
    main()
