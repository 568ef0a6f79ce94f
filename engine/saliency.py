"""Input-gradient saliency: which input pixels push a model towards a class (pure NumPy).

The saliency of class ``c`` for input ``x`` is ``-dL(x, c) / dx``, the gradient of the model's own
loss for label ``c`` with respect to the input, computed by the engine's backward pass (the same
layer ``backward`` methods training uses). For ``softmax_cross_entropy`` this is exactly
``d log p_c / dx``: a positive pixel is one where more ink would raise the probability of ``c``, a
negative one where ink lowers it. For the ``l2`` loss (``tiny8x8``'s sigmoid output ``o``) it is
``(c - o) do/dx``: positive where ink moves the output towards the class's target value.

The model's backward normally skips the input gradient of its first layer (training has no use for
it); here the first layer is asked for it. Pooling runs its correct backward even if the model
carries the ``"transposed_pool"`` variant: a saliency map must be the true gradient.
"""
import numpy as np


def input_gradient(model, x, label):
    """Saliency map of class index ``label`` for ONE input.

    ``model``: a :class:`engine.model.Sequential`; ``x: input_shape`` (e.g. ``(28, 28, 1)``) or
    ``(1, *input_shape)``; ``label``: class index (position in ``model.classes``).
    Returns ``(saliency, loss)``: ``saliency: input_shape`` in the model's dtype, ``-dL/dx``; ``loss``
    the float ``L(x, label)``.

    The call borrows the model: it runs a forward and a backward on it, so it must not be used by
    another thread meanwhile (the app calls it on the GUI thread's display model, never on the
    training model). The model's parameter gradients, ``need_dx`` flags and variant are put back as
    they were; the layers' forward caches (e.g. ``MaxPool2D.mask``) hold this input afterwards, as
    after any forward.
    """
    x = np.asarray(x, dtype=model.dtype)
    if x.shape == tuple(model.input_shape):
        x = x[None]
    if x.shape != (1, *model.input_shape):
        raise ValueError(f"input_gradient takes one input of shape {model.input_shape}, got {x.shape}")
    if not 0 <= int(label) < len(model.classes):
        raise ValueError(f"label {label} is not a class index of {model.name!r} "
                         f"({len(model.classes)} classes)")

    first = model.layers[0]
    had_need_dx = getattr(first, "need_dx", None)
    variant = model.variant
    saved_grads = {name: g.copy() for name, g in model.grads().items()}
    try:
        model.variant = None  # the true gradient, whatever backprop experiment is loaded
        if had_need_dx is not None:
            first.need_dx = True
        out = model.forward(x, training=False)                        # (1, K)
        loss, d = model.loss_from_output(out, np.array([int(label)]))  # dL/dout: (1, K)
        for layer in reversed(model.layers):
            d = layer.backward(d)                                     # ends as dL/dx: (1, *input_shape)
    finally:
        if had_need_dx is not None:
            first.need_dx = had_need_dx
        model.variant = variant
        live = model.grads()
        for name, g in saved_grads.items():  # layer backward wrote parameter gradients: undo that
            live[name][...] = g
    return (-d[0]).astype(model.dtype, copy=False), float(loss)
