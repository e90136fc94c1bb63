"""The builders make exactly the models they made before the ResNet's block
was shared (issue 14): the same layers in the same order, the same weight
names, shapes and trainability, the same regularization losses, and for the
small models the same outputs for the same weights. The expected values are
`tests/data/architectures.json`, written from the builders as they were."""

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
