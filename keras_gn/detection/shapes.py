"""A tiny COCO-format data set of coloured shapes, for tests and demos.

`make_shapes_coco(directory)` draws images of rectangles, triangles and
ellipses on noisy backgrounds, writes them as PNG files with COCO JSON
annotations (boxes, polygon masks) and converts both splits to TFRecords with
the Model Garden's own `create_coco_tf_record`:

    directory/train-00000-of-00001.tfrecord, directory/val-00000-of-00001.tfrecord
    directory/instances_train.json, directory/instances_val.json
"""

import json
import os
import subprocess
import sys

import numpy as np

__all__ = ["make_shapes_coco", "CATEGORIES"]

CATEGORIES = [{"id": 1, "name": "rectangle"}, {"id": 2, "name": "triangle"}, {"id": 3, "name": "ellipse"}]


def _polygon(kind, cx, cy, r, rng):
    if kind == 1:
        w, h = r * rng.uniform(0.6, 1.0), r * rng.uniform(0.6, 1.0)
        return [(cx - w, cy - h), (cx + w, cy - h), (cx + w, cy + h), (cx - w, cy + h)]
    if kind == 2:
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    return [(cx + r * np.cos(a), cy + 0.7 * r * np.sin(a)) for a in angles]


def _split(directory, name, count, size, rng, start_id):
    from PIL import Image, ImageDraw

    images, annotations = [], []
    folder = os.path.join(directory, f"images_{name}")  # not matched by the train*/val* globs
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        image_id = start_id + i
        canvas = Image.fromarray(rng.integers(0, 60, (size, size, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(canvas)
        for _ in range(rng.integers(1, 4)):
            kind = int(rng.integers(1, 4))
            r = float(rng.uniform(size * 0.1, size * 0.22))
            cx, cy = rng.uniform(r + 1, size - r - 1, 2)
            points = [(float(x), float(y)) for x, y in _polygon(kind, cx, cy, r, rng)]
            color = tuple(int(c) for c in rng.integers(120, 256, 3))
            draw.polygon(points, fill=color)
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
            area = 0.5 * abs(sum(xs[j] * ys[j - 1] - xs[j - 1] * ys[j] for j in range(len(xs))))
            annotations.append(
                {
                    "id": len(annotations) + start_id * 10,
                    "image_id": image_id,
                    "category_id": kind,
                    "bbox": box,
                    "area": area,
                    "iscrowd": 0,
                    "segmentation": [[c for p in points for c in p]],
                }
            )
        file_name = f"{image_id:06d}.png"
        canvas.save(os.path.join(folder, file_name))
        images.append({"id": image_id, "file_name": file_name, "height": size, "width": size})
    path = os.path.join(directory, f"instances_{name}.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": CATEGORIES}, f)
    return folder, path


def make_shapes_coco(directory, train_images=24, val_images=8, size=128, seed=0):
    """Writes the data set (see the module docstring); returns its paths."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, count, start in (("train", train_images, 1), ("val", val_images, 10_000)):
        folder, annotations = _split(directory, name, count, size, rng, start)
        # The Model Garden's converter, run as its documented command line.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "official.vision.data.create_coco_tf_record",
                f"--image_dir={folder}",
                f"--object_annotations_file={annotations}",
                f"--output_file_prefix={os.path.join(directory, name)}",
                "--num_shards=1",
                "--include_masks",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        out[name] = os.path.join(directory, f"{name}-00000-of-00001.tfrecord")
        out[f"{name}_annotations"] = annotations
    return out
