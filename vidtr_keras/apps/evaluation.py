"""Multi-view evaluation on an annotation list, and its metrics (top-k, mAP).

It reports top-1 / top-5 at clip level (every view scored on its own) and at video level (the scores
averaged over the views), mAP for multi-label lists, and every video it could not use (unparsable
line, label outside the class list, missing or undecodable file) with the list file and line: it
never skips one silently.
"""

import keras
import numpy as np

from vidtr_keras import data as vdata
from vidtr_keras.apps.predict import predict_views
from vidtr_keras.data.annotations import AnnotationProblem
from vidtr_keras.data.sampling import clip_geometry


def top_k_hits(scores, labels, k):
    """1.0 where one of the true labels (a tuple per row) is among the k highest scores."""
    k = min(int(k), scores.shape[-1])
    top = np.argsort(-scores, axis=-1, kind="stable")[:, :k]
    return np.array([float(any(label in row for label in labs)) for row, labs in zip(top, labels)])


def average_precision(scores, positives):
    """Non-interpolated AP of one class: the mean precision at the rank of every positive."""
    order = np.argsort(-scores, kind="stable")
    hits = positives[order].astype(np.float64)
    if hits.sum() == 0:
        return None
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def mean_average_precision(scores, labels, num_classes):
    """mAP over the classes with at least one positive; (mAP, number of classes counted)."""
    targets = np.zeros((len(labels), num_classes), bool)
    for row, labs in enumerate(labels):
        targets[row, list(labs)] = True
    aps = [average_precision(scores[:, c], targets[:, c]) for c in range(num_classes)]
    aps = [ap for ap in aps if ap is not None]
    return (float(np.mean(aps)) if aps else None), len(aps)


def evaluate(
    model,
    annotations,
    root=None,
    geometry=None,
    num_clips=10,
    num_crops=3,
    batch_size=6,
    workers=1,
    half_tick=False,
    multi_label=None,
    progress=None,
):
    """Multi-view evaluation of `model` on an annotation list; returns the report (a dict).

    Args:
        model: a classifier returning logits on (batch, T, H, W, 3) clips.
        annotations: an `AnnotationList` (its problems are reported, its records evaluated).
        root: directory the list's paths are relative to.
        geometry: `ClipGeometry` (default: the model's, see `clip_geometry`).
        num_clips, num_crops: views per video (10 x 3 in the paper).
        batch_size: views per forward pass.
        workers: decoding threads.
        half_tick: mmaction-style centred test windows instead of the released loader's.
        multi_label: sigmoid scores and mAP (default: when a record has several labels).
        progress: optional callable(done, total, path) called after every video.

    Returns:
        dict with `videos_listed`, `videos_read`, `videos_failed`, `failed` (each unusable video or
        line with file, line, path and the reason), `short_videos`, `clip_level` and `video_level`
        top-1/top-5 (and mAP for multi-label lists) and per-video `predictions`.
    """
    geometry = geometry or clip_geometry(model)
    multi_label = annotations.multi_label if multi_label is None else bool(multi_label)
    classes = int(model.output_shape[-1])
    failed = [dict(p.to_dict(), stage="annotation") for p in annotations.problems]
    records = []
    for record in annotations.records:
        if max(record.labels) >= classes:
            failed.append(
                dict(
                    AnnotationProblem(
                        record.source,
                        record.line,
                        f"label {max(record.labels)} is outside the model's {classes} classes",
                        record.path,
                    ).to_dict(),
                    stage="annotation",
                )
            )
        else:
            records.append(record)
    clip_scores, clip_labels, video_scores, video_labels, predictions, short = [], [], [], [], [], []
    done = 0
    for record, views, error in vdata.iter_views(
        records, root, geometry.clip_len, geometry.rate, geometry.crop_size, num_clips, num_crops, half_tick, workers
    ):
        done += 1
        if views is None:
            failed.append(
                dict(AnnotationProblem(record.source, record.line, error, record.path).to_dict(), stage="decode")
            )
        else:
            scores = predict_views(model, views.views, batch_size, multi_label)
            clip_scores.append(scores)
            clip_labels.extend([record.labels] * len(scores))
            mean = scores.mean(axis=0)
            video_scores.append(mean)
            video_labels.append(record.labels)
            if views.short:
                short.append({"path": record.path, "line": record.line, "num_frames": int(views.num_frames)})
            top = np.argsort(-mean, kind="stable")[:5]
            predictions.append(
                {
                    "path": record.path,
                    "labels": list(record.labels),
                    "num_frames": int(views.num_frames),
                    "top5": [[int(i), round(float(mean[i]), 6)] for i in top],
                }
            )
        if progress is not None:
            progress(done, len(records), record.path)

    report = {
        "backend": keras.backend.backend(),
        "annotations": annotations.source,
        "root": root,
        "clip_len": geometry.clip_len,
        "rate": geometry.rate,
        "crop_size": geometry.crop_size,
        "views": {"clips": num_clips, "crops": num_crops, "window_starts": "half-tick" if half_tick else "official"},
        "scores": "sigmoid" if multi_label else "softmax",
        "multi_label": multi_label,
        "videos_listed": len(annotations.records) + len(annotations.problems),
        "videos_read": len(video_scores),
        "videos_failed": len(failed),
        "failed": failed,
        "short_videos": short,
    }
    if video_scores:
        clip_scores = np.concatenate(clip_scores)
        video_scores = np.stack(video_scores)
        report["clip_level"] = {
            "top1": float(top_k_hits(clip_scores, clip_labels, 1).mean()),
            "top5": float(top_k_hits(clip_scores, clip_labels, 5).mean()),
            "views": int(len(clip_scores)),
        }
        report["video_level"] = {
            "top1": float(top_k_hits(video_scores, video_labels, 1).mean()),
            "top5": float(top_k_hits(video_scores, video_labels, 5).mean()),
            "videos": int(len(video_scores)),
        }
        if multi_label:
            report["clip_level"]["mAP"], _ = mean_average_precision(clip_scores, clip_labels, classes)
            report["video_level"]["mAP"], counted = mean_average_precision(video_scores, video_labels, classes)
            report["video_level"]["mAP_classes"] = counted
    else:
        report["clip_level"] = report["video_level"] = None
    report["predictions"] = predictions
    return report
