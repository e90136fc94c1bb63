"""Copying weights between models built from the same definitions, by layer name."""

from keras_gn.errors import load_model

__all__ = ["copy_by_name"]


def copy_by_name(source, target, transform=None, skip=()):
    """Copies into every weighted layer of `target` the weights of the layer
    of the same name in `source`.

    Args:
      source: a Keras model, or the path of one saved with `model.save`.
      target: the model to fill in place (Keras 3 or tf_keras).
      transform: `fn(target_layer, weights) -> weights`, e.g. to inflate 2-D
        kernels to 3-D; None copies as they are.
      skip: names of target layers to leave as they are.

    Returns:
      The names of the layers copied. Raises ValueError when a layer has no
      twin in `source` or its weights have other shapes.
    """
    if isinstance(source, str):
        source = load_model(source, "Give a model.keras written by keras-gn-imagenet.")
    copied = []
    for layer in target.layers:
        if not layer.weights or layer.name in skip:
            continue
        try:
            twin = source.get_layer(layer.name)
        except ValueError:
            raise ValueError(f"The source model has no layer {layer.name!r}: depth, width or norm differ.") from None
        weights = twin.get_weights()
        if transform is not None:
            weights = transform(layer, weights)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if expected != [tuple(w.shape) for w in weights]:
            raise ValueError(
                f"Layer {layer.name!r}: source weights {[w.shape for w in weights]} do not fit {expected}."
            )
        layer.set_weights(weights)
        copied.append(layer.name)
    return copied
