"""The Colab notebooks: committed without outputs, in step with their
jupytext source (colab/*.py), and executed top to bottom with papermill at
their small size (SMALL=True)."""

import json
import os
import re

import pytest
from binaries import ROOT

COLAB = os.path.join(ROOT, "colab")
NOTEBOOKS = ["01_group_norm_quickstart", "02_batch_size_study", "03_mask_rcnn_gn"]
# What each executed notebook must have printed (a cell that ran to its end).
EXPECTED_OUTPUT = {
    "01_group_norm_quickstart": [r"GroupNormalization: 0 -> 53", r"same predictions: True", r"\| forward \| yes \|"],
    "02_batch_size_study": [
        r"4 replicas per step",
        r"\[\d+/\d+\] .*min left",
        r"GN − BN",
        r"Table 3: a middle number of groups .*: (holds|does not hold)",
        r"Figure 4: GN's final training error at or below BN's: (holds|does not hold)",
        r"plain images: BN's loss from 32 to 2 images per replica is .* the train/test mismatch, is",
        r"exposed images: BN's loss from 32 to 2 images per replica is",
    ],
    "03_mask_rcnn_gn": [
        r"'backbone': 17, 'decoder': 8, 'rpn_head': 0, 'detection_head': 4, 'mask_head': 4",
        r"box AP \d\.\d{4}, mask AP \d\.\d{4}",
        r"detections per image: \[\d+, \d+, \d+, \d+\]",
    ],
}

# 02: the quick run's five plots, the comparison with the paper, the committed study's three
# (Figure 1, BN's error taken apart, exposure: the default study has no Table 1 or 3).
PLOTS = {"01_group_norm_quickstart": 2, "02_batch_size_study": 9, "03_mask_rcnn_gn": 1}


def _text(cell):
    return "".join(cell.source if isinstance(cell.source, str) else cell.source)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_clean_and_paired(name):
    jupytext = pytest.importorskip("jupytext")
    import nbformat

    notebook = nbformat.read(os.path.join(COLAB, f"{name}.ipynb"), as_version=4)
    source = jupytext.read(os.path.join(COLAB, f"{name}.py"))
    assert [(c.cell_type, _text(c)) for c in notebook.cells] == [(c.cell_type, _text(c)) for c in source.cells], (
        f"colab/{name}.ipynb is out of step with colab/{name}.py: run `jupytext --sync colab/{name}.py`"
    )
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"stale outputs in colab/{name}.ipynb"
    first = _text(notebook.cells[0])
    badge = re.search(r"colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/main/colab/([\w.]+)", first)
    assert badge and badge.group(2) == f"{name}.ipynb", "the Open-in-Colab badge must open this notebook"
    install = _text(notebook.cells[1])
    assert f'REPO_URL = "https://github.com/{badge.group(1)}"' in install and 'find_spec("keras_gn") is None' in install
    assert "parameters" in notebook.cells[2].metadata.get("tags", [])


@pytest.mark.large
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, tmp_path):
    papermill = pytest.importorskip("papermill")
    output = tmp_path / f"{name}.ipynb"
    env_before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        papermill.execute_notebook(
            os.path.join(COLAB, f"{name}.ipynb"),
            str(output),
            parameters={"SMALL": True},
            kernel_name="python3",
            cwd=str(tmp_path),
            progress_bar=False,
            execution_timeout=900,
        )
    finally:
        if env_before is None:
            os.environ.pop("MPLBACKEND")
        else:
            os.environ["MPLBACKEND"] = env_before
    cells = json.loads(output.read_text())["cells"]
    printed = "\n".join(
        "".join(o.get("text", ""))
        + "".join(o.get("data", {}).get("text/plain", ""))
        + "".join(o.get("data", {}).get("text/markdown", ""))
        for c in cells
        if c["cell_type"] == "code"
        for o in c["outputs"]
    )
    for pattern in EXPECTED_OUTPUT[name]:
        assert re.search(pattern, printed), f"{name}: no output matching {pattern!r}"
    images = sum("image/png" in o.get("data", {}) for c in cells if c["cell_type"] == "code" for o in c["outputs"])
    assert images >= PLOTS[name], f"{name}: expected {PLOTS[name]} plots, found {images}"


def test_quickstart_data_cell_falls_back_to_the_bundled_subset_offline(monkeypatch, capsys):
    """Notebook 01 at its default size (SMALL=False) on a machine without the
    network or a local Fashion-MNIST: its data cell, run as it is, uses the
    subset inside keras_gn and says so, instead of stopping."""
    import keras
    import numpy as np

    from keras_gn.data import fashion_mnist

    def offline():
        raise OSError("no network")

    monkeypatch.setattr(fashion_mnist, "_local_dir", lambda: None)
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    source = open(os.path.join(COLAB, "01_group_norm_quickstart.py")).read()
    cells = source.split("# %%")
    cell = next(c for c in cells if "x_train, y_train), (x_test, y_test), source =" in c)
    cell = cell.split("\ndef small_cnn")[0]  # the data part; the rest trains
    namespace = {"SMALL": False, "np": np}
    exec(compile(cell, "01_group_norm_quickstart.py", "exec"), namespace)  # noqa: S102 - the notebook's own cell
    out = capsys.readouterr().out
    assert "Fashion-MNIST is neither installed locally nor downloadable here (OSError: no network)" in out
    assert "Using the Fashion-MNIST subset that ships with keras_gn instead" in out
    assert "Fashion-MNIST from keras_gn/data/fashion_mnist_subset.npz: 10000 training images" in out
    assert namespace["x_train"].shape == (10000, 28, 28, 1)
