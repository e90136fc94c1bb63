"""`python -m experiments.coco_mask_rcnn` runs keras-gn-coco (keras_gn/apps/coco.py) from a checkout."""

from keras_gn.apps.coco import main

if __name__ == "__main__":
    main()
