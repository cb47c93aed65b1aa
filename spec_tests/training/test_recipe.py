"""The fine-tuning recipe of `vidtr train` / `TrainConfig`: AdamW (`LayerDecayAdamW`) with warm-up + cosine
per step against a hand computation, layer-wise learning-rate decay per block, label smoothing, mixup and
cutmix on clips, a frozen backbone (linear probe), stochastic depth passed to the backbone, the flags
generated from `TrainConfig`, clear errors for bad values, the released recipe as the default, and an exact
resume of a run that uses all of it.
"""

import contextlib
import dataclasses
import json
import math
from unittest import mock

import keras
import numpy as np
import pytest

from vidtr_keras import build_model, training
from vidtr_keras.models.backbone import VidTrBackbone
from vidtr_keras.models.loading import load_model
from vidtr_keras.training import recipe
from vidtr_keras.training.mixing import SoftTargetBatches, cutmix_box, one_hot
from vidtr_keras.training.optimizers import layer_decay_scale, layer_id

from helpers import BACKEND, to_numpy, vidtr

JIT = "off" if BACKEND == "jax" else "auto"  # one JAX compilation per test model (as training/test_trainer.py)
HAS_DROP_PATH = "drop_path_rate" in VidTrBackbone.__init__.__code__.co_varnames


def train_args(demo, output, *extra):
    return [
        "train",
        *("--model", "vidtr_tiny", "--train", demo / "train.txt", "--val", demo / "val.txt", "--root", demo),
        *("--labels", demo / "classes.txt", "--rate", "2", "--batch-size", "4", "--epochs", "2"),
        *("--output", output, "--workers", "2", "--jit-compile", JIT, "--verbose", "0"),
        *extra,
    ]


def printed(capsys):
    """What the command printed, as one line (rich wraps long lines at spaces)."""
    return " ".join(capsys.readouterr().out.split())


def config_for(demo, output, **settings):
    return training.TrainConfig(
        output=str(output),
        model="vidtr_tiny",
        train=str(demo / "train.txt"),
        val=str(demo / "val.txt"),
        root=str(demo),
        labels=str(demo / "classes.txt"),
        rate=2,
        batch_size=4,
        epochs=2,
        workers=2,
        jit_compile=JIT,
        **settings,
    )


def weights_by_path(model):
    return {v.path: to_numpy(v) for v in model.weights}


# --------------------------------------------------------------------------------------------------
# The released recipe stays the default


def test_the_default_config_is_the_released_recipe():
    config = training.TrainConfig(output="run")
    assert (config.optimizer, config.schedule, config.warmup_epochs, config.min_lr) == ("sgd", "step", 0, 0.0)
    assert (config.label_smoothing, config.mixup, config.cutmix) == (0.0, 0.0, 0.0)
    assert (config.layer_decay, config.drop_path, config.freeze_backbone) == (None, None, False)
    recipe.check_recipe(config)
    recipe.resolve_defaults(config)
    assert (config.lr, config.weight_decay, config.momentum, config.gamma) == (0.01, 1e-5, 0.9, 0.1)
    schedule = recipe.make_schedule(config, steps_per_epoch=3)
    assert isinstance(schedule, training.EpochStepDecay) and config.milestones == [25, 40]
    optimizer = recipe.make_optimizer(config, schedule, model=None)
    assert type(optimizer) is training.CoupledSGD and optimizer.layer_decay is None
    assert (optimizer.momentum, optimizer.l2_weight_decay) == (0.9, 1e-5)
    assert not recipe.soft_targets(config)
    loss, metrics = recipe.loss_and_metrics(config, multi_label=False, classes=10)
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
    assert [m.name for m in metrics] == ["accuracy", "top5"]
    # AdamW's own defaults: Keras' learning rate, VideoMAE's decoupled weight decay
    adamw = recipe.resolve_defaults(training.TrainConfig(output="run", optimizer="adamw"))
    assert (adamw.lr, adamw.weight_decay) == (1e-3, 0.05)


# --------------------------------------------------------------------------------------------------
# AdamW, warm-up + cosine


def hand_schedule(step, lr, total, warmup, minimum):
    if step < warmup:
        return lr * step / warmup
    return minimum + (lr - minimum) * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) / 2


def test_adamw_with_warmup_and_cosine_follows_a_hand_computation_per_step():
    lr, total, warmup, minimum, wd = 0.02, 12, 4, 0.002, 0.1
    schedule = training.WarmupCosineDecay(lr, total, warmup, minimum, steps_per_epoch=3)
    want = [hand_schedule(s, lr, total, warmup, minimum) for s in range(total)]
    np.testing.assert_allclose([float(to_numpy(schedule(s))) for s in range(total)], want, rtol=1e-6, atol=1e-9)
    assert schedule.at_epoch(2) == pytest.approx(want[6], rel=1e-6)
    assert training.WarmupCosineDecay.from_config(schedule.get_config()).get_config() == schedule.get_config()

    # AdamW with that schedule, by hand (torch.optim.AdamW): w *= 1 - lr wd; Adam step with bias correction
    optimizer = training.LayerDecayAdamW(schedule, weight_decay=wd)
    kernel = keras.Variable(np.array([[1.0, -2.0], [0.5, 3.0]], np.float32), name="kernel")
    bias = keras.Variable(np.array([0.3, -0.1], np.float32), name="bias")  # 1-D: not decayed
    w, b = to_numpy(kernel).astype(np.float64), to_numpy(bias).astype(np.float64)
    state = {"w": [np.zeros_like(w), np.zeros_like(w)], "b": [np.zeros_like(b), np.zeros_like(b)]}
    rng = np.random.default_rng(0)
    for step in range(6):
        gw, gb = rng.normal(size=w.shape), rng.normal(size=b.shape)
        optimizer.apply(
            [keras.ops.convert_to_tensor(gw.astype(np.float32)), keras.ops.convert_to_tensor(gb.astype(np.float32))],
            [kernel, bias],
        )
        rate = want[step]
        w = w * (1 - rate * wd)
        for key, grad in (("w", gw), ("b", gb)):
            m, v = state[key]
            m[...] = 0.9 * m + 0.1 * grad
            v[...] = 0.999 * v + 0.001 * grad**2
            m_hat, v_hat = m / (1 - 0.9 ** (step + 1)), v / (1 - 0.999 ** (step + 1))
            update = rate * m_hat / (np.sqrt(v_hat) + 1e-8)
            if key == "w":
                w = w - update
            else:
                b = b - update
        np.testing.assert_allclose(to_numpy(kernel), w, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(to_numpy(bias), b, rtol=1e-5, atol=1e-7)


def test_warmup_must_end_before_the_run_and_belongs_to_the_cosine_schedule():
    with pytest.raises(ValueError, match="warmup_steps"):
        training.WarmupCosineDecay(0.1, total_steps=4, warmup_steps=4)
    config = training.TrainConfig(output="run", schedule="cosine", epochs=3, warmup_epochs=3)
    with pytest.raises(ValueError, match=r"`warmup_epochs` 3 must be fewer than the `epochs` \(3\)"):
        recipe.check_recipe(config)
    with pytest.raises(ValueError, match="`warmup_epochs` belongs to the cosine schedule"):
        recipe.check_recipe(training.TrainConfig(output="run", warmup_epochs=1))


# --------------------------------------------------------------------------------------------------
# Layer-wise learning-rate decay


def variable_at(path, shape=(2, 3)):
    """A variable whose path is `path` (as if made by the layers it names)."""
    *scopes, name = path.split("/")
    with contextlib.ExitStack() as stack:
        for scope in scopes:
            stack.enter_context(keras.name_scope(scope))
        return keras.Variable(np.linspace(-1, 1, np.prod(shape), dtype=np.float32).reshape(shape), name=name)


def test_layer_decay_gives_each_block_its_scale():
    # timm's rule on VidTr's names: embedding 0, block i -> i + 1, the rest L + 1
    assert layer_id("patch_embedding/projection/kernel", 3) == 0
    assert layer_id("class_tokens/temporal_class_tokens", 3) == 0
    assert layer_id("encoder_block_2/attention/in_proj_kernel", 3) == 3
    assert layer_id("head/kernel", 3) == layer_id("final_norm/gamma", 3) == 4
    assert layer_decay_scale("encoder_block_0/norm1/gamma", 3, 0.5) == 0.5**3

    model = build_model("vidtr_tiny", num_classes=4)  # 3 encoder blocks
    # stand-ins with the model's variable paths (the scale is a function of the path), all of one small
    # shape so that eager JAX compiles each update op once
    variables = [variable_at(v.path) for v in model.trainable_variables]
    assert [v.path for v in variables] == [v.path for v in model.trainable_variables]
    decay, lr, blocks = 0.5, 0.1, model.backbone.num_layers

    def expected_scale(path):
        top = path.split("/")[0]
        if top in ("patch_embedding", "position_embedding", "class_tokens"):
            return decay ** (blocks + 1)
        if top.startswith("encoder_block_"):
            return decay ** (blocks - int(top.rsplit("_", 1)[1]))
        return 1.0

    # SGD without momentum or L2: the step is exactly lr x scale x gradient
    sgd = training.CoupledSGD(lr, momentum=0.0, l2_weight_decay=0.0, layer_decay=decay, num_layers=blocks)
    # AdamW's first step with a constant gradient is lr x scale x sign(gradient) (m_hat / sqrt(v_hat) = 1):
    # scaling the gradient would change nothing there, the scale has to reach the step itself
    adamw = training.LayerDecayAdamW(lr, weight_decay=0.0, layer_decay=decay, num_layers=blocks)
    for optimizer, gradient in ((sgd, 0.3), (adamw, -0.3)):
        before = [to_numpy(v) for v in variables]
        optimizer.apply([keras.ops.full(v.shape, gradient) for v in variables], variables)
        scales = optimizer.learning_rate_scales()
        for variable, old in zip(variables, before):
            want = expected_scale(variable.path)
            assert scales[variable.path] == pytest.approx(want), variable.path
            step = (old - to_numpy(variable)) / (lr * (gradient if optimizer is sgd else np.sign(gradient)))
            np.testing.assert_allclose(step, np.full(step.shape, want), rtol=1e-4, err_msg=variable.path)
    assert {expected_scale(v.path) for v in variables} == {1.0, 0.5, 0.25, 0.125, 0.0625}


def test_adamw_decays_weights_with_their_scaled_lr_but_not_biases_norms_or_embeddings():
    model = build_model("vidtr_tiny", num_classes=4)
    variables = model.trainable_variables
    lr, wd, decay = 0.1, 0.5, 0.5
    optimizer = training.LayerDecayAdamW(lr, weight_decay=wd, layer_decay=decay, num_layers=3)
    before = {v.path: to_numpy(v) for v in variables}
    optimizer.apply([keras.ops.zeros(v.shape) for v in variables], variables)  # Adam's step is 0: only decay
    scales = optimizer.learning_rate_scales()
    for variable in variables:
        path = variable.path
        skip = len(variable.shape) == 1 or path.startswith(("position_embedding/", "class_tokens/"))
        factor = 1.0 if skip else 1.0 - lr * scales[path] * wd
        np.testing.assert_allclose(to_numpy(variable), before[path] * factor, rtol=1e-6, err_msg=path)
    assert scales["patch_embedding/projection/kernel"] == decay**4  # decayed, at the embedding's scale
    config = optimizer.get_config()
    assert (config["layer_decay"], config["num_layers"], config["weight_decay"]) == (0.5, 3, 0.5)
    assert config["epsilon"] == 1e-8


# --------------------------------------------------------------------------------------------------
# Soft targets


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothing_loss_equals_a_hand_computation(smoothing):
    config = training.TrainConfig(output="run", label_smoothing=smoothing)
    loss, metrics = recipe.loss_and_metrics(config, multi_label=False, classes=4)
    logits = np.array([[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, 3.0, -2.0]], np.float32)
    labels = np.array([0, 3])
    targets = one_hot(labels, 4)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    smoothed = targets * (1 - smoothing) + smoothing / 4
    want = float(np.mean(-(smoothed * log_p).sum(-1)))
    if smoothing == 0.0:  # the released recipe's loss, on class indices
        assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
        assert float(to_numpy(loss(labels, logits))) == pytest.approx(want, rel=1e-5)
    else:  # on soft targets, smoothed by Keras
        assert [m.name for m in metrics] == ["accuracy"]
        assert float(to_numpy(loss(targets, logits))) == pytest.approx(want, rel=1e-5)
    # multi-label: binary cross-entropy on y (1 - e) + e / 2
    bce, _ = recipe.loss_and_metrics(config, multi_label=True, classes=4)
    multi = np.array([[1, 0, 1, 0], [0, 0, 0, 1]], np.float32)
    q = multi * (1 - smoothing) + smoothing / 2
    p = 1 / (1 + np.exp(-logits))
    want = float(np.mean(-(q * np.log(p) + (1 - q) * np.log(1 - p))))
    assert float(to_numpy(bce(multi, logits))) == pytest.approx(want, rel=1e-4)


class FakeClips:
    """The part of `VideoClipDataset` that `SoftTargetBatches` uses: clip i is filled with i + 1."""

    def __init__(self, n=6, batch_size=4, classes=5, training=True):
        self.records, self.batch_size, self.num_classes, self.training = list(range(n)), batch_size, classes, training
        self.multi_label, self.epoch, self.failures = False, 0, {}
        self.workers, self.use_multiprocessing, self.max_queue_size = 1, False, 10

    def __len__(self):
        return len(self.records) // self.batch_size

    def set_epoch(self, epoch):
        self.epoch = epoch

    def order(self, epoch):
        return np.random.default_rng([7, epoch]).permutation(len(self.records))

    def get_item(self, index, epoch):
        clip = np.full((3, 8, 10, 2), index + 1.0, np.float32)
        clip[:, 0, 0, 0] += np.arange(3)  # frames differ
        return clip, np.int32(index % self.num_classes)


@pytest.mark.parametrize("seed", range(4))
def test_mixup_blends_clips_and_targets_that_sum_to_one(seed):
    clips = np.random.default_rng(seed).normal(size=(4, 3, 8, 10, 2)).astype(np.float32)
    targets = one_hot([0, 1, 2, 1], 3)
    mixed, soft, box = training.mix_batch(clips, targets, np.random.default_rng(seed), mixup=0.8)
    assert box is None
    np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-6)
    lam = soft[0, 0]  # clip 0 (class 0) mixed with clip 3 (class 1)
    assert 0.0 <= lam <= 1.0 and soft[0, 1] == pytest.approx(1 - lam)
    np.testing.assert_allclose(mixed, lam * clips + (1 - lam) * clips[::-1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_cutmix_pastes_the_same_box_in_every_frame_and_mixes_targets_by_area(seed):
    clips = np.random.default_rng(seed).normal(size=(4, 3, 8, 10, 2)).astype(np.float32)
    targets = one_hot([0, 1, 2, 1], 3)
    mixed, soft, box = training.mix_batch(clips, targets, np.random.default_rng(seed), cutmix=1.0)
    y0, y1, x0, x1 = box
    inside = np.zeros((8, 10), bool)
    inside[y0:y1, x0:x1] = True
    for frame in range(3):  # the same box through time: inside from the partner, outside untouched
        np.testing.assert_array_equal(mixed[:, frame][:, inside], clips[::-1, frame][:, inside])
        np.testing.assert_array_equal(mixed[:, frame][:, ~inside], clips[:, frame][:, ~inside])
    np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-6)
    assert soft[0, 0] == pytest.approx(1 - inside.mean())  # lam = the area that stayed
    y0, y1, x0, x1 = cutmix_box(8, 10, 1.0, np.random.default_rng(0))
    assert y0 == y1 and x0 == x1  # lam 1: an empty box


def test_mixed_batches_are_repeatable_per_epoch_and_batch_whatever_came_before():
    data = SoftTargetBatches(FakeClips(n=8), mixup=0.8, cutmix=1.0, seed=3)
    first = [data[b] for b in range(len(data))]
    data.set_epoch(1)
    other = data[0]
    data.set_epoch(0)
    again = data[1]  # out of order, after another epoch: the same batch
    np.testing.assert_array_equal(again[0], first[1][0])
    np.testing.assert_array_equal(again[1], first[1][1])
    assert not np.array_equal(other[0], first[0][0])
    for _, targets in first + [other]:
        np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)
    plain = SoftTargetBatches(FakeClips(n=8, training=False), mixup=0.8, cutmix=1.0)  # validation: no mixing
    clips, targets = plain[0]
    assert set(np.unique(targets)) == {0.0, 1.0} and np.all(targets.sum(-1) == 1.0)


# --------------------------------------------------------------------------------------------------
# Frozen backbone, stochastic depth


def test_a_frozen_backbone_does_not_move_while_the_head_trains(demo, tmp_path, capsys):
    source = build_model("vidtr_tiny", num_classes=4)
    source.save_weights(tmp_path / "start.weights.h5")
    output = tmp_path / "probe"
    args = train_args(demo, output, "--weights", tmp_path / "start.weights.h5", "--freeze-backbone")
    args[args.index("--epochs") + 1] = "1"
    assert vidtr(*args, "--lr", "0.1") == 0
    assert "backbone frozen, its dropout off: a linear probe of 132 parameters" in printed(capsys)
    model = load_model(output, compile=True).model
    assert model.backbone.trainable is False and [v.path for v in model.trainable_variables] == [
        "head/kernel",
        "head/bias",
    ]
    assert model.backbone.dropout == 0.0 and model.backbone.attention_dropout == 0.0  # deterministic features
    after, before = weights_by_path(model), weights_by_path(source)
    for path, value in before.items():
        if path.startswith("head/"):
            assert not np.allclose(after[path], value), path
        else:
            np.testing.assert_array_equal(after[path], value, err_msg=path)
    assert int(to_numpy(model.optimizer.iterations)) == 2  # two steps of the head only


def test_drop_path_reaches_the_backbone_of_a_preset_and_of_a_saved_model(demo, tmp_path):
    if not HAS_DROP_PATH:
        pytest.skip("VidTrBackbone has no drop_path_rate yet (stochastic depth is added in models/, layers/)")
    seen = {}

    def fake_fit(model, *args):
        seen["rate"] = model.backbone.drop_path_rate
        raise KeyboardInterrupt

    with mock.patch("vidtr_keras.training.trainer._fit", fake_fit), pytest.raises(KeyboardInterrupt):
        training.train(config_for(demo, tmp_path / "a", drop_path=0.2), verbose=0)
    assert seen["rate"] == pytest.approx(0.2)
    build_model("vidtr_tiny", num_classes=4).save(tmp_path / "saved.keras")
    saved = dataclasses.replace(config_for(demo, tmp_path / "b", drop_path=0.1), model=str(tmp_path / "saved.keras"))
    with mock.patch("vidtr_keras.training.trainer._fit", fake_fit), pytest.raises(KeyboardInterrupt):
        training.train(saved, verbose=0)  # a saved model is rebuilt with the rate, its weights kept
    assert seen["rate"] == pytest.approx(0.1)


def test_dropout_sets_every_rate_of_a_preset_and_of_a_saved_model_and_keeps_its_weights(demo, tmp_path):
    seen = {}

    def fake_fit(model, *args):
        seen["rates"] = (model.backbone.dropout, model.backbone.attention_dropout, model.dropout)
        seen["weights"] = {v.path: to_numpy(v) for v in model.weights}
        raise KeyboardInterrupt

    with mock.patch("vidtr_keras.training.trainer._fit", fake_fit), pytest.raises(KeyboardInterrupt):
        training.train(config_for(demo, tmp_path / "a", dropout=0.0), verbose=0)
    assert seen["rates"] == (0.0, 0.0, 0.0)  # the preset's 0.1, 0.1 and 0.5 otherwise
    saved = build_model("vidtr_tiny", num_classes=4)
    saved.save(tmp_path / "saved.keras")
    config = dataclasses.replace(config_for(demo, tmp_path / "b", dropout=0.25), model=str(tmp_path / "saved.keras"))
    with mock.patch("vidtr_keras.training.trainer._fit", fake_fit), pytest.raises(KeyboardInterrupt):
        training.train(config, verbose=0)
    assert seen["rates"] == (0.25, 0.25, 0.25)
    assert sorted(seen["weights"]) == sorted(v.path for v in saved.weights)
    for variable in saved.weights:  # rebuilt with the new rates, every weight as it was saved
        np.testing.assert_array_equal(seen["weights"][variable.path], to_numpy(variable), err_msg=variable.path)


# --------------------------------------------------------------------------------------------------
# The command line


def test_recipe_flags_round_trip_through_the_command_line(demo, tmp_path):
    seen = {}

    def fake_train(config, **kwargs):
        seen["config"] = config
        return {"history": [], "epochs": 0, "output": config.output, "writer": True}

    flags = (
        *("--optimizer", "adamw", "--schedule", "cosine", "--warmup-epochs", "1", "--min-lr", "1e-6"),
        *("--label-smoothing", "0.1", "--mixup", "0.8", "--cutmix", "1.0", "--layer-decay", "0.75"),
        *("--drop-path", "0.1", "--weight-decay", "0.05", "--lr", "5e-4", "--freeze-backbone", "--dropout", "0"),
    )
    with mock.patch("vidtr_keras.cli.train.train", fake_train):
        assert vidtr(*train_args(demo, tmp_path / "flags", *flags)) == 0
    config = seen["config"]
    assert (config.optimizer, config.schedule, config.warmup_epochs, config.min_lr) == ("adamw", "cosine", 1, 1e-6)
    assert (config.label_smoothing, config.mixup, config.cutmix, config.layer_decay) == (0.1, 0.8, 1.0, 0.75)
    assert (config.drop_path, config.weight_decay, config.lr, config.freeze_backbone) == (0.1, 0.05, 5e-4, True)
    assert config.dropout == 0.0
    with mock.patch("vidtr_keras.cli.train.train", fake_train):
        assert vidtr(*train_args(demo, tmp_path / "flags")) == 0
    default = seen["config"]
    assert (default.optimizer, default.schedule, default.lr, default.weight_decay) == ("sgd", "step", None, None)
    assert default.dropout is None


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--label-smoothing", "-0.1"], "--label-smoothing must be in [0, 1), got -0.1"),
        (["--layer-decay", "1.5"], "--layer-decay must be in (0, 1], got 1.5"),
        (["--layer-decay", "0"], "--layer-decay must be in (0, 1], got 0.0"),
        (["--schedule", "cosine", "--warmup-epochs", "2"], "--warmup-epochs 2 must be fewer than the --epochs (2)"),
        (["--warmup-epochs", "1"], "--warmup-epochs belongs to the cosine schedule; add --schedule cosine"),
        (["--mixup", "-1"], "--mixup must be >= 0, got -1.0"),
        (["--drop-path", "1"], "--drop-path must be in [0, 1), got 1.0"),
        (["--dropout", "1"], "--dropout must be in [0, 1), got 1.0"),
        (["--freeze-backbone", "--layer-decay", "0.7"], "with --freeze-backbone only the head trains"),
        (["--schedule", "cosine", "--milestones", "1"], "--milestones belong to the step schedule"),
    ],
)
def test_a_bad_recipe_value_is_a_clear_error_naming_the_flag(demo, tmp_path, capsys, flags, words):
    assert vidtr(*train_args(demo, tmp_path / "bad", *flags)) == 2
    assert words in printed(capsys)
    assert not (tmp_path / "bad").exists()  # stopped before anything was built or written


def test_an_unknown_optimizer_or_schedule_is_refused_by_the_flag(demo, tmp_path, capsys):
    for flag, value in (("--optimizer", "adam"), ("--schedule", "linear")):
        with pytest.raises(SystemExit):
            vidtr(*train_args(demo, tmp_path / "bad", flag, value))
        assert f"argument {flag}: invalid choice: '{value}'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="`optimizer` must be one of sgd, adamw; got 'adam'"):
        recipe.check_recipe(training.TrainConfig(output="run", optimizer="adam"))


# --------------------------------------------------------------------------------------------------
# Stored and resumed exactly

RECIPE = dict(
    optimizer="adamw",
    lr=2e-3,
    schedule="cosine",
    warmup_epochs=1,
    min_lr=1e-5,
    label_smoothing=0.1,
    mixup=0.8,
    cutmix=1.0,
    layer_decay=0.75,
)


def test_resume_of_an_adamw_cosine_mixup_run_gives_the_weights_of_an_uninterrupted_run(demo, tmp_path, capsys):
    uninterrupted = training.train(config_for(demo, tmp_path / "whole", **RECIPE), verbose=0)
    pointer = json.loads((tmp_path / "whole" / "checkpoint.json").read_text())
    for key, value in RECIPE.items():  # every setting is stored in the run directory
        assert pointer["config"][key] == value, key
    assert pointer["config"]["weight_decay"] == 0.05  # AdamW's default, resolved and stored
    steps = 2  # 8 training videos, batches of 4
    lrs = [row["lr"] for row in uninterrupted["history"]]
    want = [hand_schedule(e * steps, 2e-3, 2 * steps, steps, 1e-5) for e in range(2)]
    np.testing.assert_allclose(lrs, want, rtol=1e-5)  # the log's lr: the first step of each epoch
    optimizer = load_model(tmp_path / "whole", compile=True).model.optimizer
    assert isinstance(optimizer, training.LayerDecayAdamW) and optimizer.layer_decay == 0.75
    assert optimizer.num_layers == 3  # vidtr_tiny's encoder blocks
    assert isinstance(optimizer._learning_rate, training.WarmupCosineDecay)

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch == 1 and batch == 1:  # mid-way through epoch 2, after the epoch-1 checkpoint
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.train(config_for(demo, tmp_path / "killed", **RECIPE), callbacks=[Kill()], verbose=0)
    assert vidtr("train", "--output", tmp_path / "killed", "--resume", "--verbose", "0", "--jit-compile", JIT) == 0
    whole = weights_by_path(load_model(tmp_path / "whole").model)
    resumed = weights_by_path(load_model(tmp_path / "killed").model)
    for path, value in whole.items():
        np.testing.assert_array_equal(resumed[path], value, err_msg=path)
    history = json.loads((tmp_path / "killed" / "checkpoint.json").read_text())["history"]
    # another recipe is another run: resume refuses it, naming the flag
    assert vidtr("train", "--output", tmp_path / "killed", "--resume", "--mixup", "0.2") == 2
    assert "--mixup 0.2 (the run used 0.8)" in printed(capsys)
    drop = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert drop(history) == drop(uninterrupted["history"])
