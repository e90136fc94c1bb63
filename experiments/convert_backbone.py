"""`python -m experiments.convert_backbone` runs keras-gn-convert-backbone
(keras_gn/apps/convert_backbone.py) from a checkout."""

from keras_gn.apps.convert_backbone import main

if __name__ == "__main__":
    main()
