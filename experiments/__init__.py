"""The paper's experiments, `python -m experiments.NAME` in a checkout; the
code is in keras_gn/apps, installed as the keras-gn-* console scripts."""
