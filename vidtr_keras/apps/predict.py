"""Models in, predictions out: multi-view prediction of one video, and the padded-batch loop every
application runs its clips through (`run_padded_batches`). Models come from
`vidtr_keras.models.loading.load_model` (any model spec: preset, preset or run directory, `.keras`
file, official checkpoint).

Test views follow the paper's protocol: per video, 10 windows uniformly spaced x 3 crops = 30 views,
softmax scores averaged over the views (sigmoid for multi-label data).
"""

import numpy as np
from keras import ops

from vidtr_keras.data import load_views
from vidtr_keras.data.sampling import clip_geometry


def parse_views(text):
    """'10x3' -> (10, 3): windows x crops (crops 1 or 3)."""
    try:
        clips, crops = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"`views` must look like 10x3 (windows x crops), got {text!r}.") from None
    if clips < 1 or crops not in (1, 3):
        raise ValueError(f"`views` {text}: need at least one window and 1 or 3 crops.")
    return clips, crops


def scores_from_logits(logits, multi_label=False):
    """Softmax over the classes (sigmoid per class when `multi_label`), in float64."""
    logits = np.asarray(logits, np.float64)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def run_padded_batches(fn, views, batch_size):
    """`fn` on `views` (N, ...) in batches of exactly `batch_size` rows, outputs concatenated and cut
    back to N rows (numpy).

    The last batch is padded with zeros so a compiled `fn` (e.g. `model.predict_on_batch`) sees one
    shape and compiles once; the padded rows' outputs are dropped.
    """
    views = np.asarray(views, np.float32)
    out = []
    for start in range(0, len(views), batch_size):
        chunk = views[start : start + batch_size]
        real = len(chunk)
        if real < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - real,) + chunk.shape[1:], chunk.dtype)])
        out.append(np.asarray(ops.convert_to_numpy(fn(chunk)))[:real])
    return np.concatenate(out)


def predict_views(model, views, batch_size=6, multi_label=False):
    """Scores (num_views, classes) of a stack of views, in batches of `batch_size` (fewer when there
    are fewer views; the last one padded, `run_padded_batches`)."""
    views = np.asarray(views, np.float32)
    batch_size = max(1, min(int(batch_size), len(views)))
    return scores_from_logits(run_padded_batches(model.predict_on_batch, views, batch_size), multi_label)


def predict_video(
    model, path, geometry=None, num_clips=10, num_crops=3, batch_size=6, half_tick=False, multi_label=False
):
    """Scores of one video, averaged over its views: (scores (classes,), ClipViews)."""
    geometry = geometry or clip_geometry(model)
    views = load_views(path, geometry.clip_len, geometry.rate, geometry.crop_size, num_clips, num_crops, half_tick)
    scores = predict_views(model, views.views, batch_size, multi_label)
    return scores.mean(axis=0), views
