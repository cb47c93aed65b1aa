"""`vidtr_keras.models.loading.load_model`, the one way from a model spec to a model: every kind of spec
(preset directory, run directory, `.keras` file, official checkpoint, preset name with weights) written
from the same model loads back to the same weights; what a spec stores (class names, clip geometry,
optimizer state) comes with it; a spec that is none of these says what was tried.
"""

import json

import keras
import numpy as np
import pytest

from vidtr_keras.convert import gluonmm
from vidtr_keras.models import VidTrVideoClassifier, build_model, get_preset, load_model, preset_dir

from helpers import GLUONMM, load_fixture, to_numpy

NAMES = ["run", "jump", "swim"]
CLIP = {"clip_len": 4, "rate": 2, "crop_size": 32}


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(7)
    return build_model("vidtr_tiny", num_classes=3)


def weights(model):
    return {v.path: to_numpy(v) for v in model.weights}


def assert_same_weights(got, want):
    got, want = weights(got), weights(want)
    assert sorted(got) == sorted(want)
    for path, value in want.items():
        np.testing.assert_array_equal(got[path], value, err_msg=path)


def write_run_dir(model, run, epoch=3):
    """A run directory as `train` leaves it: the last checkpoint a preset directory, then the pointer."""
    stem = f"epoch_{epoch:03d}"
    preset_dir.save_preset(model, run / stem, NAMES, CLIP, metadata={"epoch": epoch})
    pointer = {"epoch": epoch, "checkpoint": stem, "config": dict(CLIP), "history": []}
    preset_dir.write_json(run / preset_dir.RUN_POINTER_FILE, pointer)


def official_npz(model, path):
    """The model as an official checkpoint with its constructor arguments (the fixtures' `.npz` layout)."""
    config = gluonmm.official_config(get_preset("vidtr_tiny")["config"], model.num_classes)
    arrays = {f"sd/{name}": value for name, value in gluonmm.to_state_dict(model).items()}
    np.savez(path, config_json=np.array(json.dumps(config)), **arrays)


@pytest.fixture(scope="module")
def specs(model, tmp_path_factory):
    """The same model as every kind of spec."""
    root = tmp_path_factory.mktemp("specs")
    preset_dir.save_preset(model, root / "preset", NAMES)
    write_run_dir(model, root / "run")
    model.save(root / "model.keras")
    model.save_weights(root / "model.weights.h5")
    official_npz(model, root / "official.npz")
    return {
        "preset directory": (str(root / "preset"), {}),
        "run directory": (str(root / "run"), {}),
        ".keras file": (str(root / "model.keras"), {}),
        "official checkpoint": (str(root / "official.npz"), {}),
        "preset name": ("vidtr_tiny", {"weights": str(root / "model.weights.h5")}),
    }


@pytest.mark.parametrize(
    "kind", ["preset directory", "run directory", ".keras file", "official checkpoint", "preset name"]
)
def test_every_kind_of_spec_loads_the_same_weights(model, specs, kind):
    spec, kwargs = specs[kind]
    loaded = load_model(spec, **kwargs)
    assert loaded.kind == kind and loaded.notes
    assert_same_weights(loaded.model, model)
    clip = np.random.default_rng(0).normal(size=(1, 4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(to_numpy(loaded.model(clip)), to_numpy(model(clip)), atol=1e-5, rtol=0)


def test_directories_bring_their_class_names_and_clip(specs):
    preset = load_model(specs["preset directory"][0])
    assert preset.class_names == NAMES and preset.clip is None and preset.rate is None
    run = load_model(specs["run directory"][0])
    assert run.class_names == NAMES and run.clip == CLIP and run.rate == 2
    assert run.source.endswith("epoch_003") and "last checkpoint" in run.notes[0]
    assert preset_dir.stored_class_names(specs["run directory"][0]) == NAMES
    for kind in (".keras file", "official checkpoint"):
        assert load_model(specs[kind][0]).class_names is None


def test_a_preset_directory_round_trips_a_video_classifier(tmp_path):
    classifier = VidTrVideoClassifier.from_preset("vidtr_tiny", class_names=NAMES)
    classifier.save_to_preset(tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "classes.txt",
        "config.json",
        "metadata.json",
        "model.weights.h5",
    ]
    metadata = preset_dir.read_metadata(tmp_path / "p")
    assert metadata["num_classes"] == 3 and metadata["parameter_count"] == classifier.count_params()
    loaded = load_model(tmp_path / "p").model
    assert isinstance(loaded, VidTrVideoClassifier) and loaded.class_names == NAMES
    assert_same_weights(loaded, classifier)


def test_compile_restores_the_optimizer_state_of_a_checkpoint(tmp_path):
    model = build_model("vidtr_tiny", num_classes=3)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(1).normal(size=(2, 4, 32, 32, 3)).astype("float32")
    model.train_on_batch(x, np.array([0, 2]))
    write_run_dir(model, tmp_path / "run", epoch=1)
    resumed = load_model(tmp_path / "run", compile=True).model
    assert int(to_numpy(resumed.optimizer.iterations)) == 1
    for got, want in zip(resumed.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
    assert not load_model(tmp_path / "run").model.compiled  # for inference: no optimizer


def test_the_official_fixture_loads_as_a_spec_and_gives_the_official_logits():
    config, state_dict, clip, logits = load_fixture("vanilla_t4")
    loaded = load_model(GLUONMM / "vanilla_t4.npz")
    assert loaded.kind == "official checkpoint"
    assert_same_weights(loaded.model, gluonmm.from_state_dict(state_dict, config))
    got = to_numpy(loaded.model(np.transpose(clip, (0, 2, 3, 4, 1)), training=False))
    assert np.abs(got - logits).max() < 1e-4


def test_an_official_checkpoint_named_after_a_released_model_needs_no_config(tmp_path):
    name = "vidtr_s_8x8_patch16_224_k400"
    assert gluonmm.checkpoint_config(f"{name}.pth") == gluonmm.RELEASED_CONFIGS[name]
    assert gluonmm.checkpoint_config("x.pth", config=name) == gluonmm.RELEASED_CONFIGS[name]
    np.savez(tmp_path / "mine.npz", **{"conv_stem.weight": np.zeros((4, 3, 1, 8, 8), "float32")})
    with pytest.raises(ValueError, match="official configuration of .*mine.npz.* is unknown"):
        load_model(tmp_path / "mine.npz")


def test_classes_asked_for_replace_the_classifier_and_say_so(specs):
    loaded = load_model(specs["run directory"][0], num_classes=5)
    assert loaded.model.num_classes == 5 and loaded.class_names is None
    assert "classifier replaced: 3 -> 5 classes" in loaded.notes[-1]
    fresh = load_model("vidtr_tiny", num_classes=2)
    assert fresh.kind == "preset name" and fresh.model.num_classes == 2 and "randomly initialised" in fresh.notes[0]


def test_a_spec_that_is_none_of_the_kinds_says_what_was_tried(specs, tmp_path):
    with pytest.raises(ValueError, match="Unknown model 'vidtr_huge'.*preset directory.*vidtr_tiny"):
        load_model("vidtr_huge")
    with pytest.raises(FileNotFoundError, match="neither a preset directory .*config.json.* nor .*checkpoint.json"):
        load_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="No model at"):
        load_model(tmp_path / "absent.keras")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="none of: a preset directory, a `vidtr train` run directory"):
        load_model(tmp_path / "notes.txt")
    weights_only = specs["preset name"][1]["weights"]
    with pytest.raises(ValueError, match="holds no architecture: give it as `weights` with a preset name"):
        load_model(weights_only)
    with pytest.raises(ValueError, match="keeps its own configuration"):
        load_model(specs[".keras file"][0], overrides={"remat": True})
    with pytest.raises(ValueError, match="`config` describes an official checkpoint"):
        load_model("vidtr_tiny", config="vidtr_s_8x8_patch16_224_k400")
    with pytest.raises(FileNotFoundError, match="No weights file"):
        load_model("vidtr_tiny", weights=tmp_path / "absent.weights.h5")
