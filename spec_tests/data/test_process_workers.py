"""Loading training batches in worker processes (`VideoClipDataset(use_multiprocessing=True)`, `vidtr train
--loader processes`): the same batches, bit for bit, as in this process or in threads, for any number of
workers, over two epochs and after a resume; failures reported from the workers. (A training run resumed
with `--loader processes` giving the weights of an uninterrupted run with threads: spec_tests/training/
test_trainer.py.)

The batches are drawn the way `fit` draws them: Keras' `PyDatasetAdapter` (its `OrderedEnqueuer` starts a
`multiprocessing.Pool` of `workers` processes for each epoch, with the default start method: fork on Linux),
after `set_epoch` as `EpochCheckpoint.on_epoch_begin` calls it. The backend is imported and has run ops in
this process before the workers fork (TensorFlow, JAX and torch start threads of their own).
"""

import keras
import numpy as np
import pytest
from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

from vidtr_keras.data import VideoClipDataset, read_annotations
from vidtr_keras.data.synthetic import make_demo_dataset

from helpers import to_numpy

KINDS = [(0, False), (1, False), (2, False), (1, True), (2, True)]  # (workers, use_multiprocessing)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """2 classes x 3 videos (2 train + 1 val each), 10-14 frames of 24x32 px, and a train list that also
    names the demo's corrupt file."""
    root = tmp_path_factory.mktemp("demo")
    make_demo_dataset(root, num_classes=2, videos_per_class=3, frames=(10, 14), height=24, width=32, val_per_class=1)
    lines = (root / "train.txt").read_text().splitlines()
    (root / "train_bad.txt").write_text("\n".join([*lines, "videos/corrupt.avi 12 0"]) + "\n")
    return root


def dataset(demo, workers, processes, list_name="train.txt"):
    records = read_annotations(demo / list_name).records
    return VideoClipDataset(
        records, demo, clip_len=2, rate=2, crop_size=16, batch_size=2, seed=7,
        workers=workers, use_multiprocessing=processes,
    )  # fmt: skip


def epochs_of(data, epochs):
    """The batches `fit` would draw in `epochs` (a list of epoch numbers): [[(clips, labels), ...], ...]."""
    adapter = PyDatasetAdapter(data, shuffle=False)
    out = []
    for epoch in epochs:
        data.set_epoch(epoch)  # what EpochCheckpoint.on_epoch_begin does
        adapter.on_epoch_begin()
        out.append([(np.array(x), np.array(y)) for x, y in adapter.get_numpy_iterator()])
        adapter.on_epoch_end()
    return out


def assert_same(got, want):
    assert len(got) == len(want)
    for got_epoch, want_epoch in zip(got, want):
        assert len(got_epoch) == len(want_epoch)
        for (gx, gy), (wx, wy) in zip(got_epoch, want_epoch):
            np.testing.assert_array_equal(gx, wx)
            np.testing.assert_array_equal(gy, wy)


def test_batches_are_the_same_for_any_number_and_kind_of_workers_and_after_a_resume(demo):
    # The backend runs ops (and starts its threads) before any worker process forks.
    to_numpy(keras.ops.matmul(keras.ops.ones((8, 8)), keras.ops.ones((8, 8))))
    want = epochs_of(dataset(demo, 0, False), [0, 1])
    assert len(want[0]) == 2 and not np.array_equal(want[0][0][0], want[1][0][0])  # epochs differ
    for workers, processes in KINDS[1:]:
        assert_same(epochs_of(dataset(demo, workers, processes), [0, 1]), want)
    # a resumed run: a fresh dataset (and fresh processes) set to epoch 1 serves the uninterrupted epoch 1
    assert_same(epochs_of(dataset(demo, 2, True), [1]), want[1:])


def test_worker_processes_report_the_videos_they_could_not_decode(demo):
    serial, spread = dataset(demo, 0, False, "train_bad.txt"), dataset(demo, 2, True, "train_bad.txt")
    with pytest.warns(UserWarning, match="corrupt.avi"):
        want = epochs_of(serial, [0, 1])
    assert_same(epochs_of(spread, [0, 1]), want)  # the same substitutes, drawn in the workers
    assert list(spread.failures) == ["videos/corrupt.avi"] == list(serial.failures)
    assert "Cannot decode video" in spread.failures["videos/corrupt.avi"]
