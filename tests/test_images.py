"""Tests of textrelu.stages.images: tiny files in each official format, one end-to-end run, real MNIST."""

import gzip
import io
import json
import pickle
import statistics
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from corpus import invoke, ok  # noqa: E402

from textrelu import checkpoint
from textrelu.data.image_sets import (
    CIFAR10_CLASSES,
    LOADERS,
    decode_cifar_jpeg,
    load_cifar10,
    load_mnist,
    load_norb,
    read_idx,
)
from textrelu.errors import BadInput
from textrelu.settings import DATASETS, Net
from textrelu.stages.images import DEFAULT_HIDDEN, images

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def needs_shared(test):
    """A test on the real data: marked realdata, skipped where ../shared/data is absent."""
    return pytest.mark.realdata(
        pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent")(test)
    )


# ---------------------------------------------------------------------------------------------
# writers of the official formats


def write_idx(path: Path, array: np.ndarray, type_byte: int = 0x08) -> Path:
    """idx: 0x00 0x00 <type> <ndim>, big-endian int32 sizes, then the data (big-endian)."""
    dtype = {0x08: ">u1", 0x0C: ">i4"}[type_byte]
    raw = bytes([0, 0, type_byte, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    raw += np.asarray(array).astype(dtype).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def write_mnist(folder: Path, n_train=60, n_test=20, side=28, gz=True, seed=0) -> Path:
    """Four idx files of random digits (labels 0..9 in turn)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, side, side)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", np.arange(n) % 10)
    return folder


NORB_MAGIC = {np.uint8: 0x1E3D4C55, np.int32: 0x1E3D4C54}


def write_norb(path: Path, array: np.ndarray, magic: int | None = None) -> Path:
    """NORB binary matrix: little-endian magic, ndim, max(ndim, 3) sizes (padded with 1), data."""
    dims = list(array.shape) + [1] * (3 - array.ndim)
    magic = NORB_MAGIC[array.dtype.type] if magic is None else magic
    raw = struct.pack("<ii", magic, array.ndim) + struct.pack(f"<{len(dims)}i", *dims)
    raw += array.astype(array.dtype.newbyteorder("<")).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def write_small_norb(folder: Path, n=5, gz=False) -> Path:
    """smallnorb files whose 96x96 images are constant over 3x3 blocks (so pooling is exact)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    ext = ".gz" if gz else ""
    for part, tag in (("training", "46789"), ("testing", "01235")):
        blocks = rng.integers(0, 256, (n, 2, 32, 32)).astype(np.uint8)
        blocks[0, 0, 0, 0], blocks[0, 0, 0, 1] = 0, 255
        pairs = blocks.repeat(3, axis=2).repeat(3, axis=3)  # (n, 2, 96, 96)
        stem = f"smallnorb-5x{tag}x9x18x6x2x96x96-{part}"
        write_norb(folder / f"{stem}-dat.mat{ext}", pairs)
        write_norb(folder / f"{stem}-cat.mat{ext}", (np.arange(n) % 5).astype(np.int32))
        np.save(folder / f"{part}-blocks.npy", blocks)
    return folder


def write_jittered_norb(folder: Path, n=3) -> Path:
    """Two training files and one testing file of 108x108 stereo pairs, six classes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    names = [("46789", "training-01"), ("46789", "training-02"), ("01235", "testing-01")]
    for i, (tag, part) in enumerate(names):
        stem = f"norb-5x{tag}x9x18x6x2x108x108-{part}"
        write_norb(folder / f"{stem}-dat.mat", rng.integers(0, 256, (n, 2, 108, 108)).astype(np.uint8))
        write_norb(folder / f"{stem}-cat.mat", ((np.arange(n) + i) % 6).astype(np.int32))
    return folder


# ---------------------------------------------------------------------------------------------
# MNIST


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_files_load_scaled_and_split(tmp_path, gz):
    folder = write_mnist(tmp_path / "mnist", gz=gz)
    data = load_mnist(folder)
    assert data.X_train.shape == (50, 784) and data.X_valid.shape == (10, 784)
    assert data.X_test.shape == (20, 784) and data.shape == (1, 28, 28)
    assert data.X_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert 0.0 <= data.X_train.min() and data.X_train.max() <= 1.0
    # validation = the last training images, in file order
    raw = read_idx(next(folder.glob("train-images*")))
    np.testing.assert_allclose(data.X_valid[-1], raw[-1].reshape(-1) / 255.0, rtol=1e-6)
    assert data.y_valid.tolist() == [i % 10 for i in range(50, 60)]
    assert data.classes == [str(d) for d in range(10)]


def test_idx_parses_other_types_and_dims(tmp_path):
    values = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    assert (read_idx(write_idx(tmp_path / "x.idx", values, 0x0C)) == values).all()


def test_mnist_missing_file_is_named(tmp_path):
    folder = write_mnist(tmp_path / "mnist")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(BadInput, match="t10k-labels-idx1-ubyte"):
        load_mnist(folder)


def test_mnist_bad_magic_and_truncation(tmp_path):
    folder = write_mnist(tmp_path / "mnist", gz=False)
    path = folder / "train-images-idx3-ubyte"
    raw = path.read_bytes()
    path.write_bytes(b"\x12\x34" + raw[2:])
    with pytest.raises(BadInput, match="bad magic number 0x12340803"):
        load_mnist(folder)
    path.write_bytes(raw[:-10])
    with pytest.raises(BadInput, match="truncated"):
        load_mnist(folder)


def test_mnist_count_mismatch(tmp_path):
    folder = write_mnist(tmp_path / "mnist")
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(19) % 10)
    with pytest.raises(BadInput, match="20 images but .* 19 labels"):
        load_mnist(folder)


# ---------------------------------------------------------------------------------------------
# CIFAR-10: pickle batches and the JPEG tar agree


def smooth_images(n: int, seed: int = 0) -> np.ndarray:
    """(n, 32, 32, 3) uint8 gradients: smooth enough for JPEG to keep them close."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:32, 0:32] / 31.0
    out = np.empty((n, 32, 32, 3), np.uint8)
    for i in range(n):
        a, b, c = rng.uniform(0.2, 1.0, 3)
        out[i] = np.stack([a * rows, b * cols, c * (rows + cols) / 2], -1) * 255
    return out


def write_cifar(folder: Path):
    """The same 20 training and 10 test images as pickle batches and as a JPEG tar.

    Training image k has class k % 10 and is file number k // 10 of its class: the JPEG loader's
    order (interleaved by number) is then the pickle order.
    """
    train, test = smooth_images(20, 0), smooth_images(10, 1)
    y_train, y_test = np.arange(20) % 10, np.arange(10)
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)

    def dump(name, obj):
        with open(batches / name, "wb") as f:
            pickle.dump(obj, f)

    def flat(x):  # channel-major rows
        return x.transpose(0, 3, 1, 2).reshape(len(x), -1)

    for i in range(5):
        dump(
            f"data_batch_{i + 1}",
            {b"data": flat(train[4 * i : 4 * i + 4]), b"labels": y_train[4 * i : 4 * i + 4].tolist()},
        )
    dump("test_batch", {b"data": flat(test), b"labels": y_test.tolist()})
    dump("batches.meta", {b"label_names": [c.encode() for c in CIFAR10_CLASSES]})

    from PIL import Image

    tar_path = folder / "jpg" / "cifar10_jpg.tar"
    tar_path.parent.mkdir()
    with tarfile.open(tar_path, "w") as tar:

        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("README.md", b"# CIFAR-10-images\n")
        for split, images_, labels in (("train", train, y_train), ("test", test, y_test)):
            for k, (image, label) in enumerate(zip(images_, labels)):
                buf = io.BytesIO()
                Image.fromarray(image).save(buf, "JPEG", quality=95)
                add(f"{split}/{CIFAR10_CLASSES[label]}/{k // 10:04d}.jpg", buf.getvalue())
    return batches.parent, tar_path


def test_cifar_pickles_and_jpeg_tar_load_alike(tmp_path):
    pickles_dir, tar_path = write_cifar(tmp_path)
    from_pickles = load_cifar10(pickles_dir)
    for source in (tar_path, tar_path.parent):  # the tar itself, or the folder holding it
        from_jpeg = load_cifar10(source)
        for part in ("train", "valid", "test"):
            a, b = getattr(from_pickles, f"X_{part}"), getattr(from_jpeg, f"X_{part}")
            assert a.shape == b.shape and a.dtype == b.dtype == np.float32
            assert np.abs(a - b).mean() < 0.02  # JPEG is lossy
            assert (getattr(from_pickles, f"y_{part}") == getattr(from_jpeg, f"y_{part}")).all()
    assert from_pickles.X_train.shape == (20, 3072) and from_pickles.X_valid.shape == (5, 3072)
    assert from_pickles.X_test.shape == (5, 3072) and from_pickles.classes == CIFAR10_CLASSES
    # channel-major: the first 1024 features are the red plane
    red = smooth_images(20, 0)[3, :, :, 0].reshape(-1) / 255.0
    np.testing.assert_allclose(from_pickles.X_train[3, :1024], red, atol=1e-6)


def test_cifar_errors(tmp_path):
    with pytest.raises(BadInput, match="found 0 .tar"):
        load_cifar10(tmp_path)
    pickles_dir, _ = write_cifar(tmp_path / "c")
    (pickles_dir / "cifar-10-batches-py" / "data_batch_3").unlink()
    (pickles_dir / "cifar-10-batches-py" / "data_batch_1").rename(pickles_dir / "cifar-10-batches-py" / "x")
    with pytest.raises(BadInput, match="found 0 .tar"):  # without data_batch_1: not a pickle folder
        load_cifar10(pickles_dir)
    (pickles_dir / "cifar-10-batches-py" / "x").rename(pickles_dir / "cifar-10-batches-py" / "data_batch_1")
    with pytest.raises(BadInput, match="data_batch_3 is missing"):
        load_cifar10(pickles_dir)
    with pytest.raises(BadInput, match="not a readable JPEG"):
        decode_cifar_jpeg(b"not a jpeg", "x.jpg")


# ---------------------------------------------------------------------------------------------
# NORB


@pytest.mark.parametrize("gz", [False, True])
def test_small_norb_subsampled_to_2x32x32_in_minus1_1(tmp_path, gz):
    folder = write_small_norb(tmp_path / "norb", n=5, gz=gz)
    data = load_norb(folder)
    assert data.name == "smallnorb" and data.shape == (2, 32, 32) and len(data.classes) == 5
    assert data.X_train.shape == (4, 2048) and data.X_valid.shape == (1, 2048)
    assert data.X_test.shape == (5, 2048)
    assert data.y_train.tolist() == [0, 1, 2, 3] and data.y_valid.tolist() == [4]
    # 3x3 blocks pool exactly: the pair equals its blocks scaled into [-1, 1]
    blocks = np.load(folder / "training-blocks.npy")
    np.testing.assert_allclose(data.X_train[0], blocks[0].reshape(-1) / 127.5 - 1, atol=1e-5)
    assert data.X_train[0, 0] == -1.0 and data.X_train[0, 1] == 1.0


def test_jittered_norb_preferred_and_read_across_files(tmp_path):
    folder = write_jittered_norb(tmp_path / "norb", n=3)
    write_small_norb(folder)  # both present: the jittered-cluttered set (the paper's) wins
    data = load_norb(folder)
    assert data.name == "norb" and data.classes[-1] == "none" and len(data.classes) == 6
    assert len(data.X_train) + len(data.X_valid) == 6 and len(data.X_valid) == 1
    assert data.X_test.shape == (3, 2048)
    assert -1.0 <= data.X_train.min() and data.X_train.max() <= 1.0
    assert np.concatenate([data.y_train, data.y_valid]).tolist() == [0, 1, 2, 1, 2, 3]


def test_norb_errors(tmp_path):
    with pytest.raises(BadInput, match="no NORB files"):
        load_norb(tmp_path)
    folder = write_small_norb(tmp_path / "a")
    dat = next(folder.glob("*training-dat.mat"))
    raw = dat.read_bytes()
    dat.write_bytes(struct.pack("<i", 0x1E3D4C99) + raw[4:])
    with pytest.raises(BadInput, match="bad magic number 0x1E3D4C99"):
        load_norb(folder)
    write_norb(dat, np.zeros((2, 96, 96), np.uint8))
    with pytest.raises(BadInput, match=r"expected \(n, 2, height, width\) uint8"):
        load_norb(folder)
    dat.write_bytes(raw[:-7])
    with pytest.raises(BadInput, match="truncated"):
        load_norb(folder)
    dat.write_bytes(raw)
    next(folder.glob("*testing-cat.mat")).unlink()
    with pytest.raises(BadInput, match="testing-cat.mat is missing"):
        load_norb(folder)


# ---------------------------------------------------------------------------------------------
# the run


def test_hidden_sizes():
    def sizes(dataset, layers, hidden):
        return Net(layers=layers, hidden=hidden).sizes(DEFAULT_HIDDEN[dataset])

    assert sizes("norb", None, None) == [4000, 2000]
    assert sizes("norb", 3, None) == [4000, 2000, 2000]
    assert sizes("mnist", 2, None) == [1000, 1000]
    assert sizes("mnist", None, "500") == [500, 500, 500]
    assert sizes("mnist", 2, "300,200") == [300, 200]
    assert sizes("cifar10", 1, 64) == [64]
    with pytest.raises(BadInput, match="2 sizes for 3 layers"):
        sizes("mnist", 3, [300, 200])
    with pytest.raises(BadInput, match="layers must be at least 0"):
        sizes("mnist", -1, None)
    with pytest.raises(BadInput, match="hidden must be positive"):
        sizes("mnist", 2, 0)
    with pytest.raises(BadInput, match="at least one hidden layer"):
        images("mnist", "unused", layers=0)


def test_images_end_to_end_writes_run_folder(tmp_path):
    folder = write_mnist(tmp_path / "mnist", n_train=60, n_test=20, side=28)
    metrics = images(
        "mnist",
        folder,
        layers=2,
        hidden=16,
        epochs=2,
        pretrain_epochs=1,
        subset=30,
        learning_rate=0.05,
        device="cpu",
        out=tmp_path / "run",
        quiet=True,
    )
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= written["test_error"] <= 1.0 and written["test_error"] == pytest.approx(
        metrics["test_error"]
    )
    assert [s["layer"] for s in written["sparsity"]] == [1, 2]
    assert all(0.0 <= s["exact_zeros"] <= 1.0 for s in written["sparsity"])
    assert written["n_train"] == 30 and written["n_valid"] == 10 and written["n_test"] == 20
    assert len(written["pretrain_history"]) == 2 and 1 <= len(written["history"]) <= 2
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["hidden"] == [16, 16] and config["reconstruction"] == "softplus-mse"
    assert config["batch_size"] == 10 and config["l1"] == 0.001  # the paper's defaults
    net = checkpoint.build_net(checkpoint.load(tmp_path / "run" / "model.pt", kind="image-model"))
    assert net.layers[0].n_in == 784 and net.output.out_features == 10
    assert not list(tmp_path.joinpath("run").glob(".*.tmp"))


def test_images_few_labels_pretrains_on_every_image_and_fine_tunes_on_the_first_n(tmp_path, monkeypatch):
    import textrelu.stages.finetune
    import textrelu.stages.pretrain

    seen = {}

    def spy(name, real):
        def wrapper(net, *args, **kwargs):
            seen[name] = args[0] if name == "pretrain" else args[1]  # the data each stage reads
            return real(net, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(
        textrelu.stages.pretrain, "pretrain_layers", spy("pretrain", textrelu.stages.pretrain.pretrain_layers)
    )
    monkeypatch.setattr(textrelu.stages.finetune, "fit", spy("fit", textrelu.stages.finetune.fit))
    folder = write_mnist(tmp_path / "mnist", n_train=60, n_test=20, side=28)
    metrics = images(
        "mnist",
        folder,
        layers=1,
        hidden=8,
        epochs=1,
        pretrain_epochs=1,
        subset=40,
        labels=12,
        device="cpu",
        out=tmp_path / "run",
        quiet=True,
    )
    data = load_mnist(folder)
    assert np.array_equal(seen["pretrain"].X, data.X_train[:40])
    assert np.array_equal(seen["fit"].X, data.X_train[:12]) and np.array_equal(
        seen["fit"].y, data.y_train[:12]
    )
    assert metrics["n_train"] == 12 and metrics["n_pretrain"] == 40
    assert json.loads((tmp_path / "run" / "config.json").read_text())["labels"] == 12
    with pytest.raises(BadInput, match="labels 41 is more than the 40 training images"):
        images("mnist", folder, subset=40, labels=41, quiet=True)
    with pytest.raises(BadInput, match="labels must be at least 1"):
        images("mnist", folder, labels=0, quiet=True)


def test_shift_images_moves_each_image_by_at_most_shift_pixels():
    import torch

    from textrelu.data.image_sets import shift_images

    image = torch.zeros(2, 7, 9)
    image[0, 3, 4], image[1, 2, 2] = 1.0, 2.0  # one bright pixel per channel
    x = image.reshape(1, -1).repeat(400, 1)
    out = shift_images(x, (2, 7, 9), 2, torch.Generator().manual_seed(0)).view(400, 2, 7, 9)
    moves = set()
    for one in out:
        (y0, x0), (y1, x1) = (
            torch.nonzero(one[0] == 1.0)[0].tolist(),
            torch.nonzero(one[1] == 2.0)[0].tolist(),
        )
        assert (y0 - 3, x0 - 4) == (y1 - 2, x1 - 2)  # both channels move together
        assert one.sum() == 3.0  # nothing else changes
        moves.add((y0 - 3, x0 - 4))
    assert moves == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}  # every shift drawn
    assert torch.equal(shift_images(x, (2, 7, 9), 0), x)
    edge = torch.arange(6.0).view(1, 1, 2, 3).reshape(1, -1)  # pixels moved in repeat the border
    assert set(shift_images(edge, (1, 2, 3), 1).flatten().tolist()) <= set(range(6))


def test_images_shift_augments_fine_tuning_only_and_is_seeded(tmp_path, monkeypatch):
    import textrelu.data.image_sets as module

    batches = []
    real = module.shift_images
    monkeypatch.setattr(module, "shift_images", lambda x, *a: batches.append(x) or real(x, *a))
    folder = write_mnist(tmp_path / "mnist", n_train=60, n_test=20, side=28)
    runs = [
        images("mnist", folder, layers=1, hidden=8, epochs=2, subset=30, shift=2, device="cpu", quiet=True)
        for _ in range(2)
    ]
    assert runs[0]["test_error"] == runs[1]["test_error"]
    assert runs[0]["history"] == runs[1]["history"]
    assert len(batches) == 2 * 2 * 3  # 2 runs x 2 epochs x 3 batches of 10
    with pytest.raises(BadInput, match="shift must be at least 0"):
        images("mnist", folder, shift=-1, quiet=True)
    with pytest.raises(BadInput, match="shift 28 is not less than the 28x28 images"):
        images("mnist", folder, shift=28, quiet=True)


def test_images_fine_tunes_the_saved_pretrained_stack_of_another_run(tmp_path, monkeypatch):
    import textrelu.stages.pretrain as module

    folder = write_mnist(tmp_path / "mnist", n_train=60, n_test=20, side=28)
    args = dict(layers=2, hidden=16, epochs=2, subset=30, learning_rate=0.05, device="cpu", quiet=True)
    first = images("mnist", folder, pretrain_epochs=2, out=tmp_path / "a", **args)
    stack = tmp_path / "a" / "pretrained.pt"
    assert checkpoint.load(stack, kind="image-pretrained")["metrics"]["n_pretrain"] == 30

    def no_pretraining(*a, **k):
        raise AssertionError("pre-training ran again")

    monkeypatch.setattr(module, "pretrain_layers", no_pretraining)
    # the same settings from the saved stack: the same model as the run that made it
    again = images("mnist", folder, pretrain_epochs=2, pretrained=stack, out=tmp_path / "b", **args)
    assert again["history"] == first["history"] and again["test_error"] == first["test_error"]
    assert again["pretrain_history"] == first["pretrain_history"] and again["n_pretrain"] == 30
    # other fine-tuning settings: the config gives the stack's pre-training, not the run's defaults
    other = images("mnist", folder, pretrained=stack, l1=0.0, out=tmp_path / "c", **args)
    assert other["history"] != first["history"]
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    assert config["pretrain_epochs"] == 2 and config["l1"] == 0.0
    assert config["pretrained_from"]["pretrain_l1"] == 0.001 and config["pretrained_from"]["path"] == str(
        stack
    )
    assert not (tmp_path / "c" / "pretrained.pt").exists()
    from textrelu.experiments.report import report

    (line,) = [x for x in report([tmp_path / "c"], tmp_path / "r.md").splitlines() if x.startswith("| mnist")]
    assert (
        "L1 0.0, pre-training 2 epochs/layer at lr 0.05, masking noise 0.25 (the stack of `a`: L1 0.001, seed 0)"
        in line
    )


def test_images_tied_decoders_are_recorded_and_go_with_the_stack(tmp_path, capsys):
    folder = write_mnist(tmp_path / "mnist", n_train=60, n_test=20, side=28)
    args = dict(layers=2, hidden=16, epochs=1, subset=30, learning_rate=0.02, device="cpu", quiet=True)
    untied = images("mnist", folder, pretrain_epochs=1, out=tmp_path / "untied", **args)
    tied = images("mnist", folder, pretrain_epochs=1, tied=True, out=tmp_path / "tied", **args)
    assert tied["pretrain_history"] != untied["pretrain_history"]
    assert json.loads((tmp_path / "tied" / "config.json").read_text())["tied"] is True
    images(
        "mnist",
        folder,
        pretrained=tmp_path / "tied" / "pretrained.pt",
        out=tmp_path / "reuse",
        **{**args, "quiet": False},
    )
    assert "(1 epoch per layer, L1 0.001, tied decoders)" in capsys.readouterr().err
    config = json.loads((tmp_path / "reuse" / "config.json").read_text())
    assert config["tied"] is True and config["pretrained_from"]["tied"] is True
    from textrelu.experiments.report import report

    lines = [
        x
        for x in report([tmp_path / "untied", tmp_path / "reuse"], tmp_path / "r.md").splitlines()
        if x.startswith("| mnist")
    ]
    assert ["tied decoders" in x for x in lines] == [False, True]


def test_images_pretrained_stack_must_fit_the_run(tmp_path):
    folder = write_mnist(tmp_path / "mnist", n_train=60, n_test=20, side=28)
    images(
        "mnist",
        folder,
        layers=1,
        hidden=8,
        epochs=1,
        pretrain_epochs=1,
        subset=20,
        device="cpu",
        out=tmp_path / "a",
        quiet=True,
    )
    stack = tmp_path / "a" / "pretrained.pt"
    with pytest.raises(BadInput, match=r"has hidden \[8\], but this run asks for \[9\]"):
        images("mnist", folder, layers=1, hidden=9, pretrained=stack, quiet=True)
    with pytest.raises(BadInput, match="has activation relu, but this run asks for tanh"):
        images("mnist", folder, layers=1, hidden=8, activation="tanh", pretrained=stack, quiet=True)
    with pytest.raises(BadInput, match="leave pre-training on"):
        images("mnist", folder, layers=1, hidden=8, pretrain=False, pretrained=stack, quiet=True)
    with pytest.raises(BadInput, match="is a image-model file, not a image-pretrained one"):
        images("mnist", folder, layers=1, hidden=8, pretrained=tmp_path / "a" / "model.pt", quiet=True)
    with pytest.raises(BadInput, match="not found"):
        images("mnist", folder, layers=1, hidden=8, pretrained=tmp_path / "nothing.pt", quiet=True)


def test_an_interrupted_images_pipeline_resumes_after_its_pretraining(tmp_path, monkeypatch):
    import textrelu.stages.finetune as finetune_module
    import textrelu.stages.pretrain as pretrain_module
    from textrelu.experiments.pipeline import resume, run

    write_mnist(tmp_path / "mnist", n_train=60, n_test=20, side=28)
    (tmp_path / "p.toml").write_text(
        'name = "m"\nseed = 0\n[images]\ndataset = "mnist"\ndata_dir = "mnist"\nlayers = 2\n'
        "hidden = 16\nsubset = 30\nepochs = 2\npretrain_epochs = 1\nlearning_rate = 0.05\n"
    )
    whole = run(tmp_path / "p.toml", runs_dir=tmp_path / "whole", quiet=True)["metrics"]["images"]
    real_fit, real_pretrain = finetune_module.fit, pretrain_module.pretrain_layers

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(finetune_module, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "p.toml", runs_dir=tmp_path / "cut", quiet=True)
    (run_dir,) = (tmp_path / "cut").iterdir()
    assert (run_dir / "images" / "pretrained.pt").is_file() and not (run_dir / "metrics.json").exists()

    monkeypatch.setattr(finetune_module, "fit", real_fit)
    monkeypatch.setattr(pretrain_module, "pretrain_layers", interrupted)  # resuming must not pre-train again
    resumed = resume(run_dir, quiet=True)["metrics"]["images"]
    assert resumed["history"] == whole["history"] and resumed["test_error"] == whole["test_error"]
    assert resumed["pretrained_from"]["path"] == str(run_dir / "images" / "pretrained.pt")
    from textrelu.experiments.report import report

    (line,) = [x for x in report([run_dir], tmp_path / "r.md").splitlines() if x.startswith("| mnist")]
    assert f"(the stack of `{run_dir.name}`: L1 0.001, seed 0)" in line
    monkeypatch.setattr(finetune_module, "fit", interrupted)  # a finished run is kept as it is
    assert resume(run_dir, quiet=True)["metrics"]["images"]["test_error"] == whole["test_error"]
    monkeypatch.setattr(pretrain_module, "pretrain_layers", real_pretrain)


def test_report_of_a_pipeline_run_gives_the_pretraining_of_the_stack_it_reused(tmp_path):
    from textrelu.experiments.pipeline import run
    from textrelu.experiments.report import report

    folder = write_mnist(tmp_path / "mnist", n_train=60, n_test=20, side=28)
    images(
        "mnist",
        folder,
        layers=1,
        hidden=8,
        epochs=1,
        pretrain_epochs=2,
        subset=20,
        device="cpu",
        out=tmp_path / "a",
        quiet=True,
    )
    (tmp_path / "p.toml").write_text(
        'name = "m"\n[images]\ndataset = "mnist"\ndata_dir = "mnist"\nlayers = 1\nhidden = 8\n'
        'subset = 20\nepochs = 1\npretrain_epochs = 1\npretrained = "a/pretrained.pt"\n'
    )
    run_dir = Path(run(tmp_path / "p.toml", runs_dir=tmp_path / "runs", quiet=True)["run_dir"])
    (line,) = [x for x in report([run_dir], tmp_path / "r.md").splitlines() if x.startswith("| mnist")]
    assert (
        "pre-training 2 epochs/layer at lr 0.01, masking noise 0.25 (the stack of `a`: L1 0.001, seed 0)"
        in line
    )


def test_images_tanh_symmetric_on_norb(tmp_path):
    folder = write_small_norb(tmp_path / "norb", n=10)
    metrics = images(
        "norb",
        folder,
        hidden="12,8",
        activation="tanh",
        symmetric=True,
        epochs=1,
        pretrain_epochs=1,
        device="cpu",
        quiet=True,
    )
    assert [s["layer"] for s in metrics["sparsity"]] == [1, 2]
    assert metrics["dataset"] == "smallnorb" and metrics["n_train"] == 8


def test_images_bad_arguments(tmp_path):
    folder = write_mnist(tmp_path / "mnist")
    with pytest.raises(BadInput, match="dataset must be one of"):
        images("svhn", folder)
    with pytest.raises(BadInput, match="activation must be"):
        images("mnist", folder, activation="sigmoid")
    with pytest.raises(BadInput, match="subset must be at least 1"):
        images("mnist", folder, subset=0)
    with pytest.raises(BadInput, match="epochs must be at least 1"):
        images("mnist", folder, epochs=0)
    with pytest.raises(BadInput, match="threads must be at least 1"):
        images("mnist", folder, threads=0)
    assert tuple(LOADERS) == DATASETS


# ---------------------------------------------------------------------------------------------
# real data

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_shared
def test_real_mnist_shapes_and_label_counts():
    data = load_mnist(SHARED / "mnist")
    assert data.X_train.shape == (50_000, 784) and data.X_valid.shape == (10_000, 784)
    assert data.X_test.shape == (10_000, 784)
    assert np.bincount(np.concatenate([data.y_train, data.y_valid])).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(data.y_test).tolist() == MNIST_TEST_COUNTS
    assert data.X_train.min() == 0.0 and data.X_train.max() == 1.0


@needs_shared
def test_real_cifar_jpeg_members_decode():
    """A few members of the JPEG tar (the whole tar takes ~10 s: not in the quick tests)."""
    seen = set()
    with tarfile.open(SHARED / "cifar10" / "cifar10_jpg.tar") as tar:
        for member in tar:
            if member.name.endswith(".jpg"):
                split, label, _ = member.name.split("/")
                pixels = decode_cifar_jpeg(tar.extractfile(member).read(), member.name)
                assert split in ("train", "test") and label in CIFAR10_CLASSES
                assert pixels.shape == (3072,) and pixels.dtype == np.uint8 and pixels.std() > 0
                seen.add(member.name)
                if len(seen) == 5:
                    break
    assert len(seen) == 5


def test_report_of_image_runs_has_their_errors_and_the_papers(tmp_path):
    from textrelu.experiments.report import report

    folder = write_mnist(tmp_path / "mnist", n_train=60, n_test=20, side=28)
    runs = []
    for l1 in (0.0, 0.01):
        out = tmp_path / f"l1-{l1}"
        images(
            "mnist",
            folder,
            layers=1,
            hidden=8,
            epochs=1,
            pretrain=False,
            subset=30,
            l1=l1,
            device="cpu",
            out=out,
            quiet=True,
        )
        runs.append(out)
    images(
        "mnist",
        folder,
        layers=1,
        hidden=8,
        epochs=1,
        pretrain=True,
        pretrain_epochs=1,
        pretrain_learning_rate=0.02,
        noise=0.5,
        dropout=0.5,
        input_dropout=0.2,
        subset=30,
        device="cpu",
        out=tmp_path / "pt",
        quiet=True,
    )
    # a second seed joins its L1's row; a run that differs in more than L1 is not in the sweep
    for name, extra in (("l1-0.01-seed1", dict(seed=1)), ("l1-0.001-sym", dict(symmetric=True))):
        images(
            "mnist",
            folder,
            layers=1,
            hidden=8,
            epochs=1,
            pretrain=False,
            subset=30,
            l1=0.001 if "sym" in name else 0.01,
            device="cpu",
            out=tmp_path / name,
            quiet=True,
            **extra,
        )
    for l1 in (0.0, 0.01):  # tanh units: no exact zeros, so no sparsity sweep
        images(
            "mnist",
            folder,
            layers=1,
            hidden=8,
            epochs=1,
            pretrain=False,
            subset=30,
            l1=l1,
            activation="tanh",
            device="cpu",
            out=tmp_path / f"tanh-{l1}",
            quiet=True,
        )
    text = report(
        runs + [tmp_path / n for n in ("pt", "l1-0.01-seed1", "l1-0.001-sym", "tanh-0.0", "tanh-0.01")],
        tmp_path / "docs" / "images.md",
    )
    lines = [line for line in text.splitlines() if line.startswith("| mnist |")]
    assert len(lines) == 7
    lines = [next(x for x in lines if x.endswith(f"| {name} |")) for name in ("l1-0.0", "l1-0.01", "pt")]
    for run, line in zip(runs, lines):
        m = json.loads((run / "metrics.json").read_text())
        assert (
            f"**{m['test_error']:.2%}**" in line and "| 1.43% |" in line
        )  # the paper: relu, no pre-training
        assert run.name in line and "pre-training" not in line and "dropout" not in line
    assert "| 1.20% |" in lines[2]  # relu, pre-trained
    assert "pre-training 1 epochs/layer at lr 0.02, masking noise 0.5, dropout 0.5 (inputs 0.2)" in lines[2]
    assert (tmp_path / "docs" / "images" / "images-error-vs-sparsity.png").is_file()
    sweep = text.split(
        "## Sparsity sweep: mnist 8 relu (30 images; sgd lr 0.01, batch 10, 1 epochs at most)"
    )[1].split("##")[0]
    rows = [line for line in sweep.splitlines() if line.startswith("| 0") or line.startswith("| 1")]
    assert [r.split(" | ")[0] for r in rows] == ["| 0", "| 0.01"]  # ordered by L1
    assert rows[0].endswith("| l1-0.0 |") and rows[1].endswith("| l1-0.01, l1-0.01-seed1 |")
    errors = [
        json.loads((tmp_path / n / "metrics.json").read_text())["test_error"]
        for n in ("l1-0.01", "l1-0.01-seed1")
    ]
    assert f"**{100 * statistics.mean(errors):.2f} ± {100 * statistics.stdev(errors):.2f}** (2)" in rows[1]
    assert "Sparsity sweep: mnist 8 relu pre-trained" not in text  # one L1 only: no sweep
    assert "symmetric)" not in text  # nor for the symmetric run
    assert "Sparsity sweep: mnist 8 tanh" not in text


def test_report_tables_the_softplus_interpolation_by_a(tmp_path):
    from textrelu.experiments.report import report

    folder = write_mnist(tmp_path / "mnist", n_train=60, n_test=20, side=28)
    runs = []
    for a in ("inf", "1", "2"):
        out = tmp_path / f"a-{a}"
        images(
            "mnist",
            folder,
            layers=1,
            hidden=8,
            epochs=1,
            pretrain=False,
            subset=30,
            activation=f"softplus:{a}",
            device="cpu",
            out=out,
            quiet=True,
        )
        runs.append(out)
    text = report(runs, tmp_path / "images.md")
    table = text.split("## Softplus-to-rectifier interpolation")[1]
    rows = [
        line
        for line in table.splitlines()
        if line.startswith("| 1 |") or line.startswith("| 2 |") or line.startswith("| inf |")
    ]
    assert [r.split(" | ")[0] for r in rows] == ["| 1", "| 2", "| inf"]  # ordered by a
    assert "| 17.68% | a-1 |" in rows[0] and "| 16.40% | a-inf |" in rows[2]
    m = json.loads((runs[0] / "metrics.json").read_text())
    assert f"**{m['test_error']:.2%}**" in rows[2]


def test_report_tables_few_labels_with_and_without_pretraining(tmp_path):
    from textrelu.experiments.report import report

    folder = write_mnist(tmp_path / "mnist", n_train=60, n_test=20, side=28)
    runs, errors = [], {}
    for labels in (20, 10):
        for pretrain in (False, True):
            out = tmp_path / f"labels-{labels}-{pretrain}"
            m = images(
                "mnist",
                folder,
                layers=1,
                hidden=8,
                epochs=1,
                pretrain=pretrain,
                pretrain_epochs=1,
                labels=labels,
                device="cpu",
                out=out,
                quiet=True,
            )
            errors[labels, pretrain] = 100 * m["test_error"]
            runs.append(out)
    text = report(runs, tmp_path / "images.md")
    section = text.split("## Few labels: mnist, 8 relu, pre-training on 50 images without their labels")[1]
    rows = [line for line in section.splitlines() if line.startswith("| 10 |") or line.startswith("| 20 |")]
    assert [r.split(" | ")[0] for r in rows] == ["| 10", "| 20"]  # ordered by labels
    for row, labels in zip(rows, (10, 20)):
        cells = row.split(" | ")
        assert cells[1] == f"{errors[labels, False]:.2f}%" and cells[2] == f"{errors[labels, True]:.2f}%"
        assert cells[3] == f"{errors[labels, False] - errors[labels, True]:+.2f}"
    assert "few labels: pre-training on 50 images" in text
    assert (tmp_path / "images" / "images-few-labels-mnist-8-relu.png").is_file()


def test_the_images_command_writes_its_run_folder_and_reuses_its_stack(tmp_path):
    """`textrelu images --out` end to end through the CLI; a second run fine-tunes the first's
    stack into another folder; fine-tuning it into the folder that holds it is refused."""
    folder = write_mnist(tmp_path / "mnist", n_train=60, n_test=20, side=28)
    common = ["--layers", 1, "--hidden", 8, "--epochs", 1, "--subset", 30, "--device", "cpu", "-q"]
    run = ["images", "mnist", "--data-dir", folder]
    ok(invoke(*run, "--out", tmp_path / "a", "--pretrain-epochs", 1, *common))
    assert {p.name for p in (tmp_path / "a").iterdir()} >= {
        "model.pt",
        "pretrained.pt",
        "metrics.json",
        "config.json",
    }
    stack = str(tmp_path / "a" / "pretrained.pt")
    ok(invoke(*run, "--out", tmp_path / "b", "--pretrained", stack, *common))
    assert json.loads((tmp_path / "b" / "config.json").read_text())["pretrained_from"]["path"] == stack
