"""The experiment binaries, installed as console scripts (setup.cfg):

    keras-gn-study              the paper's classification study on a CPU (study.py; logic in keras_gn.study)
    keras-gn-imagenet           ResNet on ImageNet, Tables 1-3 (imagenet.py)
    keras-gn-kinetics           ResNet-50 I3D on Kinetics, Table 8 (kinetics.py)
    keras-gn-coco               Mask R-CNN on COCO, Tables 4-7 (coco.py)
    keras-gn-convert-backbone   an ImageNet model into a detector backbone (convert_backbone.py)

In a checkout, `python -m experiments.NAME` runs the same code. Every binary
goes through `launch.run`: one-line errors, quiet logs (`--verbose` for
TensorFlow's own). The ones that write a run folder hold it with `runs`
(one run per folder, a finished one kept, a killed one resumed).
"""
