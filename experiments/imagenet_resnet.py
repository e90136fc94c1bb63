"""`python -m experiments.imagenet_resnet` runs keras-gn-imagenet (keras_gn/apps/imagenet.py) from a checkout."""

from keras_gn.apps.imagenet import main

if __name__ == "__main__":
    main()
