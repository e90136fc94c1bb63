"""`python -m experiments.batch_size_sweep` runs keras-gn-study (keras_gn/apps/study.py) from a checkout."""

from keras_gn.apps.study import main

if __name__ == "__main__":
    main()
