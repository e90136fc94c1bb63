"""The builders make exactly the models recorded in
`tests/data/architectures.json`: the same layers in the same order, the same
weight names, shapes and trainability, the same regularization losses, and
for the small models the same outputs for the same weights. The record pads
as TensorFlow does ("same"): the builders still make it with
`padding="same"`. Their default, symmetric padding (as PyTorch and Caffe2,
for published weights), changes the models only by the padding:
`ZeroPadding` layers before the strided layers, nothing else."""

import json

import model_architectures as arch
import numpy as np
import pytest

with open(arch.PATH) as f:
    EXPECTED = json.load(f)


@pytest.mark.parametrize("case", sorted(arch.CASES))
def test_builder_makes_the_same_model(case):
    expected = EXPECTED[case]
    got = arch.describe(arch.CASES[case](), run=case in arch.RUN)
    assert got["name"] == expected["name"]
    assert got["layers"] == expected["layers"]
    assert got["weights"] == expected["weights"]
    assert got["params"] == expected["params"]
    assert got["losses"] == expected["losses"]
    if case in arch.RUN:
        np.testing.assert_allclose(got["output_sums"], expected["output_sums"], rtol=1e-5)


@pytest.mark.parametrize("case", sorted(arch.CASES))
def test_symmetric_padding_changes_only_the_padding(case):
    expected = EXPECTED[case]
    got = arch.describe(arch.SYMMETRIC[case](), run=case in arch.RUN)
    # The same weights, parameters and losses; the layers of before in the same order, plus padding layers.
    assert got["weights"] == expected["weights"]
    assert got["params"] == expected["params"] and got["losses"] == expected["losses"]
    added = [name for name in got["layers"] if name not in expected["layers"]]
    assert [name for name in got["layers"] if name in expected["layers"]] == expected["layers"]
    assert added and all(name.endswith("_pad") for name in added), added
    strided = ("stem_conv", "stem_pool", "pool2") if "i3d" in case else ("stem_conv", "stem_pool")
    for name in added:  # only before strided layers wider than 1: the stem, a pool, or a block's 3x3
        assert name[: -len("_pad")] in strided or name.endswith("_conv2_pad"), name
    if case in arch.RUN:
        # Stride 2 on even sizes pads otherwise, so the outputs differ (for the stem="small" cases,
        # only from the first strided 3x3 on).
        assert not np.allclose(got["output_sums"], expected["output_sums"], rtol=1e-5)
