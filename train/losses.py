"""The losses `train fit` minimises: a cosine-margin cross-entropy on the probabilities, and a
supervised contrastive loss on the pooled features. Plain `keras.ops`, so any backend runs them."""

import keras

from train.architectures import COSINE_SCALE

MARGIN = 0.2  # subtracted from the true class's cosine in training (default network only)
LABEL_SMOOTHING = 0.1


def margin_loss(margin, smoothing=LABEL_SMOOTHING):
    """Cross-entropy on the model's probabilities with the true class's logit lowered by
    `margin` * COSINE_SCALE (CosFace; 0 gives plain cross-entropy) and label smoothing.

    The model ends in a softmax, so log-probabilities stand in for logits: a softmax ignores the
    constant between them. A target of 1/C everywhere (an unknown face) is left uniform by the
    smoothing and unmoved by the margin, so it asks for equal cosines to every prototype.
    """
    ops = keras.ops

    def loss(y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        logits = ops.log(ops.maximum(ops.cast(y_pred, "float32"), 1e-30)) - margin * COSINE_SCALE * y_true
        target = y_true * (1 - smoothing) + smoothing / ops.cast(ops.shape(y_true)[-1], "float32")
        return -ops.sum(target * ops.log_softmax(logits, axis=-1), axis=-1)

    return loss


def contrastive_loss(temperature=0.1):
    """Supervised contrastive loss (Khosla et al. 2020) on L2-normalised features: each face is
    pulled toward the other faces of its identity in the batch (its character, or for an unknown
    face its own second copy) and pushed from the rest. Keeps the features telling apart
    characters the classifier never saw, which the gallery needs."""
    ops = keras.ops

    def loss(y_true, y_pred):
        ids = ops.reshape(ops.cast(y_true, "float32"), (-1,))
        f = ops.cast(y_pred, "float32")
        f = f / ops.maximum(ops.sqrt(ops.sum(f * f, axis=1, keepdims=True)), 1e-12)
        similarity = ops.matmul(f, ops.transpose(f)) / temperature
        n = ops.shape(similarity)[0]
        others = 1.0 - ops.eye(n)
        positives = ops.cast(ops.equal(ids[:, None], ids[None, :]), "float32") * others
        similarity = similarity - ops.max(similarity, axis=1, keepdims=True)
        log_prob = similarity - ops.log(ops.sum(ops.exp(similarity) * others, axis=1, keepdims=True))
        count = ops.sum(positives, axis=1)
        return -ops.sum(positives * log_prob, axis=1) / ops.maximum(count, 1.0)

    return loss
