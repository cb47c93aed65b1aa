"""Attention maps and attention rollout for every VidTr variant (the paper's visualisation).

- `attention_maps(model, clip)`: every encoder layer's attention probabilities, one dict per layer:
  the (T*S+1)^2 map of joint layers; the temporal and spatial maps of separable layers (VidTr's
  class-token grid included); in a std-topK pooling layer (C-VidTr) the kept rows, the full map they
  were chosen from and the original frame each kept row holds.
- `attention_rollout(model, clip)`: attention rollout (Abnar & Zuidema, 2020), which the paper uses
  to visualise what VidTr attends to: the maps of one clip through `vidtr_keras.apps.rollout` (heads
  averaged, residual as 0.5 * A + 0.5 * I, layers multiplied), giving the classified token's relevance
  on every patch of every sampled frame, a temporal importance per frame, and the separate temporal,
  spatial and joint rollouts.
- `plot_rollout(rollout, frames)`: the maps over the sampled frames with a per-frame importance bar
  (matplotlib, imported only here).
- `explain_video(model, path)`: the centre clip of a video file (`data.dataset.load_centre_clip`),
  its prediction and its rollout.

The default forward pass keeps no attention map: the maps come from one extra eager pass
(`VidTrBackbone.call_with_attention_scores`), in which every block is called with
`return_attention_scores=True`.

Example:
>>> maps = attention_maps(model, clip)  # clip (T, H, W, 3), normalised like the model's input
>>> maps[0]["temporal"].shape  # VidTr-S: (batch, S + 1, heads, T + 1, T + 1)
>>> rollout = attention_rollout(model, clip)
>>> rollout.relevance.shape, rollout.frame_importance.shape  # (T, gh, gw), (T,)
"""

import dataclasses

import keras
import numpy as np

from vidtr_keras.apps.predict import scores_from_logits
from vidtr_keras.apps.rollout import Rollout, rollout_from_maps
from vidtr_keras.data.dataset import load_centre_clip
from vidtr_keras.data.sampling import clip_geometry
from vidtr_keras.data.transforms import normalize

CLASS_ROW = -1  # `row_frames` value of the class-token row of the grid layout


def _backbone(model):
    backbone = getattr(model, "backbone", model)
    if not hasattr(backbone, "call_with_attention_scores"):
        raise ValueError(f"Expected a VidTr model (a VidTrClassifier or VidTrBackbone), got {type(model).__name__}.")
    return backbone


def _as_batch(clip, backbone):
    clip = np.asarray(keras.ops.convert_to_numpy(clip), np.float32)
    if clip.ndim == 4:
        return clip[None], True
    if clip.ndim != 5:
        raise ValueError(
            f"clip must be (frames, height, width, {backbone.num_channels}) or a batch of such clips, "
            f"got shape {clip.shape}."
        )
    return clip, False


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x), np.float32)


def attention_maps(model, clip, training=False):
    """The attention probabilities of every encoder layer of a VidTr model on a clip.

    Args:
        model: a `VidTrClassifier` (e.g. from `build_model` or `load_model`) or a `VidTrBackbone`.
        clip: (frames, height, width, channels) or a batch (batch, frames, height, width, channels),
            prepared like the model's input (ImageNet-normalised).
        training: dropout switch of the pass (probabilities are taken before dropout either way).

    Returns:
        A list with one dict per encoder layer. Arrays are numpy and always keep the batch axis;
        heads are not averaged. Keys:
        - "layer": index; "attention": "joint" or the separable order; "pooling": "std_topk",
          "average", "conv" or None; "frames_dropped".
        - "layout": "grid" (VidTr's (T+1) x (S+1) token grid: row 0 the temporal class tokens,
          column 0 the spatial class tokens) or "single" (one class token first, frame-major
          patches; it bypasses separable layers); "grid_size": (gh, gw) patches per frame.
        - "rows_in", "rows_out": frame rows of the token grid before and after the layer (with the
          class-token row in the grid layout).
        - joint layers: "joint" (batch, heads, N, N), N = 1 + rows * S, rows = queries.
        - separable layers: "temporal" (batch, S', heads, rows_out, rows_in), per spatial column
          (S' = S, plus the class column in the grid layout), rows = query frames; with std-topK
          pooling the kept rows after the official second softmax (exactly what multiplies the
          values), with "temporal_before_pooling" (batch, S', heads, rows_in, rows_in) and the
          one-hot "selection" (batch, S', heads, rows_out, rows_in). "spatial" (batch, rows, heads,
          S', S'), per frame row (the kept rows when the temporal step pooled first).
        - "row_frames": (batch, S', heads, rows_out) int, the original frame index held by each
          output row of each column and head (std-topK keeps different frames per column and head),
          CLASS_ROW (-1) for the class-token row; for joint layers that of their tokens; None after
          average / conv pooling, whose rows mix frames.
    """
    backbone = _backbone(model)
    clips, _ = _as_batch(clip, backbone)
    _, captured = backbone.call_with_attention_scores(clips, training=training)
    layout = backbone.class_token_layout
    class_row = layout == "grid"
    rows = backbone.frames_after_each_layer(clips.shape[1])
    rows_in = clips.shape[1] // backbone.patch_size[0] + int(class_row)
    gh, gw = (clips.shape[2] // backbone.patch_size[1], clips.shape[3] // backbone.patch_size[2])
    columns = gh * gw + int(class_row)
    batch, heads = clips.shape[0], backbone.num_heads
    frames0 = np.arange(rows_in) - int(class_row)  # class row -> CLASS_ROW
    row_frames = np.broadcast_to(frames0, (batch, columns, heads, rows_in)).copy()
    maps = []
    for i, ((kind, dropped), scores) in enumerate(zip(backbone.layer_plan, captured)):
        rows_out = rows[i] + int(class_row)
        entry = {
            "layer": i,
            "attention": kind,
            "pooling": backbone.pooling if dropped else None,
            "frames_dropped": int(dropped),
            "layout": layout,
            "grid_size": (gh, gw),
            "rows_in": int(rows_in),
            "rows_out": int(rows_out),
        }
        entry.update({key: _numpy(value) for key, value in scores.items()})
        if "selection" in entry and row_frames is not None:
            kept = np.argmax(entry["selection"], axis=-1)  # (b, S', h, rows_out) indices into rows_in
            row_frames = np.take_along_axis(row_frames, kept, axis=-1)
        elif dropped:  # average / conv pooling mixes frames
            row_frames = None
        entry["row_frames"] = None if row_frames is None else row_frames.copy()
        maps.append(entry)
        rows_in = rows_out
    return maps


def attention_rollout(model, clip, training=False):
    """Attention rollout of a VidTr model on a clip (see the module docstring and `Rollout`).

    Args:
        model: a `VidTrClassifier` or `VidTrBackbone`, any variant.
        clip: (frames, height, width, channels), normalised like the model's input, or a batch.
        training: dropout switch of the pass (leave False).

    Returns:
        A `Rollout`; without a batch axis for a single clip.
    """
    backbone = _backbone(model)
    _, single = _as_batch(clip, backbone)
    readout = backbone.get_layer("class_token_readout").mode
    rollout = rollout_from_maps(attention_maps(model, clip, training=training), readout=readout)
    return rollout.first() if single else rollout


# --------------------------------------------------------------------------------------------------
# Video files


@dataclasses.dataclass
class Explanation:
    """What `explain_video` returns.

    Attributes:
        frames: (T, crop, crop, 3) uint8, the sampled centre clip as shown to the model.
        frame_indices: (T,) indices of those frames in the video.
        num_frames: frames in the video.
        scores: (classes,) softmax of the model's logits on the clip.
        rollout: the clip's `Rollout`.
    """

    frames: np.ndarray
    frame_indices: np.ndarray
    num_frames: int
    scores: np.ndarray
    rollout: Rollout


def explain_video(model, path, geometry=None):
    """Prediction and attention rollout of a model on the centre clip of a video file.

    Args:
        model: a `VidTrClassifier`.
        path: the video.
        geometry: a `ClipGeometry` (frames, rate, crop size); default the model's
            (`vidtr_keras.data.sampling.clip_geometry`).

    Returns:
        An `Explanation`.
    """
    geometry = geometry or clip_geometry(model)
    view = load_centre_clip(path, geometry.clip_len, geometry.rate, geometry.crop_size, normalized=False)
    frames = np.asarray(view.views[0], np.uint8)
    clip = normalize(frames)[None]
    logits = np.asarray(keras.ops.convert_to_numpy(model(clip, training=False)), np.float64)[0]
    rollout = attention_rollout(model, clip[0])
    return Explanation(frames, np.asarray(view.indices[0]), int(view.num_frames), scores_from_logits(logits), rollout)


# --------------------------------------------------------------------------------------------------
# Plot


def plot_rollout(rollout, frames, title=None, frame_labels=None, path=None, max_columns=8):
    """The rollout over the sampled frames: one panel per frame with the classified token's
    relevance as a heat map (one colour scale for all frames), and a bar per frame with its
    temporal importance.

    Args:
        rollout: a single-clip `Rollout` (`attention_rollout(model, clip)`).
        frames: (T, H, W, 3) uint8 (or float in [0, 255]) frames the rollout was computed on.
        title: first line of the title (e.g. the model and its prediction).
        frame_labels: one caption per frame (e.g. the frame index in the video).
        path: when given, the figure is written there (PNG by extension).
        max_columns: frames per row of panels.

    Returns:
        The matplotlib `Figure`.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    relevance = np.asarray(rollout.relevance)
    if relevance.ndim != 3:
        raise ValueError(f"plot_rollout needs a single clip's rollout, got relevance of shape {relevance.shape}.")
    frames = np.asarray(frames)
    t = relevance.shape[0]
    if frames.ndim != 4 or len(frames) != t:
        raise ValueError(f"frames must be the {t} frames (T, H, W, 3) of the clip, got shape {frames.shape}.")
    frames = np.clip(frames.astype(np.float32) / 255.0, 0.0, 1.0)
    labels = list(frame_labels) if frame_labels is not None else [f"frame {i}" for i in range(t)]
    columns = min(t, max_columns)
    panel_rows = -(-t // columns)
    fig = Figure(figsize=(2.0 * columns + 1.4, 2.2 * panel_rows + 3.0), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(
        panel_rows + 1, columns + 1, height_ratios=[1.0] * panel_rows + [0.8], width_ratios=[1.0] * columns + [0.07]
    )
    share = relevance / max(float(relevance.sum()), 1e-12)  # share of the attention on frame patches
    vmax = float(share.max()) or 1.0
    cmap = colormaps["inferno"]
    h, w = frames.shape[1:3]
    for i in range(t):
        ax = fig.add_subplot(grid[i // columns, i % columns])
        level = share[i] / vmax
        heat = cmap(level)  # one coloured square per patch token, more opaque where attention is high
        heat[..., 3] = 0.1 + 0.7 * level
        ax.imshow(frames[i])
        ax.imshow(heat, extent=(0, w, h, 0), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        caption = f"{labels[i]}\n{100 * rollout.frame_importance[i]:.1f}% of attention"
        if rollout.kept_fraction is not None:
            caption += f", kept {100 * rollout.kept_fraction[i]:.0f}%"
        ax.set_title(caption, fontsize=8)
    cax = fig.add_subplot(grid[:panel_rows, columns])
    bar = fig.colorbar(ScalarMappable(Normalize(0.0, vmax), cmap), cax=cax)
    bar.set_label("share of the attention on frames, per patch", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    bar.ax.yaxis.set_major_formatter(_percent())

    ax = fig.add_subplot(grid[panel_rows, :columns])
    x = np.arange(t)
    ax.bar(x, 100 * np.asarray(rollout.frame_importance), color="tab:orange", label="temporal importance")
    if rollout.kept_fraction is not None:
        ax.plot(
            x,
            100 * np.asarray(rollout.kept_fraction),
            "k.--",
            label="frame kept by std-topK pooling (% of patch columns x heads)",
        )
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=2, frameon=False)
    uniform = 100.0 / t
    ax.axhline(uniform, color="gray", lw=0.8, ls=":")
    ax.text(-0.45, uniform, "uniform", fontsize=7, color="gray", va="bottom", ha="left")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=7, rotation=0 if t <= 12 else 90)
    ax.set_xlim(-0.5, t - 0.5)
    ax.set_ylabel("% of attention", fontsize=8)
    ax.set_title("Temporal importance: share of the prediction's rolled-out attention on each frame", fontsize=9)
    ax.tick_params(labelsize=7)

    head = title or "Attention rollout"
    what = "joint" if rollout.attention == "joint" else "separable (temporal + spatial)"
    if rollout.joint is not None and rollout.attention != "joint":
        what = "separable (temporal + spatial) and joint"
    class_share = float(np.asarray(rollout.class_token_share))
    fig.suptitle(
        f"{head}\nWhere the classifying token looks: attention rollout over {rollout.num_layers} {what} layers "
        f"(heads averaged, residual as 0.5*attention + 0.5*identity).\nBrighter, more opaque squares = patches "
        f"with more attention; one colour scale for all frames; {100 * class_share:.0f}% of the attention stays "
        f"on the learned class tokens (not shown).",
        fontsize=9,
    )
    if path is not None:
        fig.savefig(path, bbox_inches="tight")
    return fig


def _percent():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{100 * v:.2g}%")


__all__ = [
    "CLASS_ROW",
    "Explanation",
    "attention_maps",
    "attention_rollout",
    "explain_video",
    "plot_rollout",
]
