"""`python -m experiments.kinetics_i3d` runs keras-gn-kinetics (keras_gn/apps/kinetics.py) from a checkout."""

from keras_gn.apps.kinetics import main

if __name__ == "__main__":
    main()
