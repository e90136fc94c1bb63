"""Predictions of a trained Mask R-CNN experiment, drawn on its images.

    params = run.experiment_params("maskrcnn_r50fpn_gn_coco", data_dir, ...)
    run.run(params, "train", model_dir, strategy)
    predictions = predict(params, model_dir, num_images=4)
    draw(predictions, class_names={1: "square", ...})

The model is the experiment's own (`task.build_model()`), restored from the
trainer's latest checkpoint in `model_dir`, and runs on the experiment's
validation input pipeline, so what is drawn is what the COCO evaluator saw.
"""

import numpy as np
import tensorflow as tf
from official.core import task_factory
from official.vision.ops import mask_ops, preprocess_ops

import keras_gn.detection  # noqa: F401 - registers the experiments

__all__ = ["predict", "draw"]


def predict(params, model_dir, num_images=4, min_score=0.3):
    """Detections on the first `num_images` validation images.

    Returns a list with one dict per image: `image` (uint8 [H, W, 3], as the
    model saw it, padding included), `boxes` ([K, 4] y0, x0, y1, x1 in its
    pixels), `classes`, `scores` and, when the model predicts masks, `masks`
    ([K, H, W] bool), for the K detections scoring at least `min_score`."""
    checkpoint_path = tf.train.latest_checkpoint(model_dir)
    if checkpoint_path is None:
        raise FileNotFoundError(
            f"No checkpoint in {model_dir!r}: train the experiment first (run.run(params, 'train', ...))."
        )
    task = task_factory.get_task(params.task)
    model = task.build_model()
    tf.train.Checkpoint(model=model).read(checkpoint_path).expect_partial()
    data = params.task.validation_data.as_dict()
    data["global_batch_size"] = num_images
    images, labels = next(iter(task.build_inputs(type(params.task.validation_data)(**data))))
    outputs = model(
        images, anchor_boxes=labels["anchor_boxes"], image_shape=labels["image_info"][:, 1, :], training=False
    )
    pixels = images.numpy() * np.array(preprocess_ops.STDDEV_RGB) + np.array(preprocess_ops.MEAN_RGB)
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    predictions = []
    for i in range(num_images):
        count = int(outputs["num_detections"][i])
        scores = outputs["detection_scores"][i, :count].numpy()
        keep = scores >= min_score
        boxes = outputs["detection_boxes"][i, :count].numpy()[keep]
        prediction = {
            "image": pixels[i],
            "boxes": boxes,
            "classes": outputs["detection_classes"][i, :count].numpy()[keep].astype(int),
            "scores": scores[keep],
        }
        if outputs.get("detection_masks") is not None:
            masks = outputs["detection_masks"][i, :count].numpy()[keep]
            xywh = np.stack([boxes[:, 1], boxes[:, 0], boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]], axis=-1)
            height, width = pixels.shape[1:3]
            pasted = (
                mask_ops.paste_instance_masks(masks, xywh, height, width)
                if len(masks)
                else np.zeros((0, height, width))
            )
            prediction["masks"] = pasted > 0.5
        predictions.append(prediction)
    return predictions


def draw(predictions, class_names=None, columns=4, size=3.5):
    """One panel per image: masks as coloured overlays, boxes with class and
    score. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    class_names = class_names or {}
    rows = -(-len(predictions) // columns)
    fig, axes = plt.subplots(
        rows,
        min(columns, len(predictions)),
        figsize=(size * min(columns, len(predictions)), size * rows),
        squeeze=False,
    )
    colours = plt.get_cmap("tab10")
    for ax, prediction in zip(axes.flat, predictions):
        image = prediction["image"].astype(np.float32) / 255
        for k, mask in enumerate(prediction.get("masks", [])):
            image[mask] = 0.5 * image[mask] + 0.5 * np.array(colours(k % 10)[:3])
        ax.imshow(image)
        for k, (box, cls, score) in enumerate(zip(prediction["boxes"], prediction["classes"], prediction["scores"])):
            y0, x0, y1, x1 = box
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=colours(k % 10), linewidth=1.5))
            ax.text(
                x0,
                y0,
                f"{class_names.get(cls, cls)} {score:.2f}",
                color="white",
                fontsize=7,
                va="bottom",
                bbox=dict(facecolor=colours(k % 10), alpha=0.8, pad=1, linewidth=0),
            )
        ax.set_title(f"{len(prediction['boxes'])} detections", fontsize=9)
        ax.axis("off")
    for ax in list(axes.flat)[len(predictions) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig
