r"""keras-gn-convert-backbone: an ImageNet model into the Model Garden backbone
checkpoint the Mask R-CNN experiments start from: a model from
keras-gn-imagenet (Keras 3), or a published GN weight file.

    keras-gn-convert-backbone --keras_model=runs/r50_gn_32/model.keras --output=runs/r50_gn_backbone/ckpt
    keras-gn-convert-backbone --keras_model=runs/r50_bn_32/model.keras \
        --output=runs/r50_bn_backbone/ckpt      # BN becomes frozen_bn; --norm=syncbn to train it
    keras-gn-convert-backbone --weights=R-50-GN.pkl --output=runs/r50_gn_backbone/ckpt   # the paper's own weights

Depth, norm and groups are read from the model (it keeps its builder's
arguments); --depth, --norm and --groups override them. A GN+WS model
(--weight_standardization) gives a GN+WS backbone, the start of the
maskrcnn_r50fpn_gn_ws_coco experiment:

    keras-gn-convert-backbone --keras_model=runs/r50_gn_ws_32/model.keras --output=runs/r50_gn_ws_backbone/ckpt

--weights reads the paper's authors' Detectron pickles (R-50-GN.pkl,
R-101-GN.pkl), timm's resnet50_gn (.safetensors, .pth) and the WS authors'
GN+WS checkpoints (R-50-GN-WS.pth.tar), as keras_gn.models.load_pretrained
does (--source when the file's names do not tell). Where the experiment's
backbone config must differ to take the checkpoint (WS and its formula, the
padding of a model trained before symmetric padding), the binary prints the
--params_override that makes it match.

The checkpoint holds the whole ResNet (res2-res5): the FPN experiments load
it into their backbone, the C4 ones into their res2-res4 backbone and their
res5 box head. The logic lives in keras_gn.detection.convert.
"""

import os

from absl import flags

from keras_gn.apps import launch, runs

FLAGS = flags.FLAGS
flags.DEFINE_string("keras_model", None, "model.keras written by keras-gn-imagenet.")
flags.DEFINE_string(
    "weights", None, "A published GN ResNet weight file (.pkl Detectron, .safetensors/.pth timm, .pth.tar WS)."
)
flags.DEFINE_enum("source", None, ["detectron", "timm", "ws"], "The --weights file's source (default: from its names).")
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
    from keras_gn.detection.convert import detector_overrides, write_backbone_checkpoint

    with launch.usage_errors():
        if (FLAGS.keras_model is None) == (FLAGS.weights is None):
            raise ValueError("give one of --keras_model (a keras-gn-imagenet model) or --weights (a published file).")
        if FLAGS.source and not FLAGS.weights:
            raise ValueError("--source is for --weights.")
        runs.check_writable(os.path.dirname(FLAGS.output) or ".", "--output", remote=True)
    with launch.usage_errors():
        source = FLAGS.keras_model
        if FLAGS.weights:
            from keras_gn.models import load_pretrained

            source = load_pretrained(FLAGS.weights, FLAGS.source, include_top=False, input_shape=(None, None, 3))
        path, arguments = write_backbone_checkpoint(
            source, FLAGS.output, FLAGS.depth, FLAGS.norm, FLAGS.groups, FLAGS.input_size
        )
    print(
        f"Wrote {path}; use it as --init_checkpoint of the FPN and C4 experiments (init_checkpoint_modules=backbone)."
    )
    if arguments["weight_standardization"] or arguments["padding"] != "symmetric":
        print(f"The experiment's backbone config must match it: --params_override={detector_overrides(arguments)}")


def main():
    launch.run(_main, name="keras-gn-convert-backbone", doc=__doc__)


if __name__ == "__main__":
    main()
