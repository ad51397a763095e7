"""CIFAR-10's python batches are pickles: textrelu.data.image_sets must read them without running
anything a file names. Also the JPEG tar: truncated, linked or oversized members fail loudly."""

import builtins
import io
import os
import pickle
import struct
import subprocess
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from textrelu.data import image_sets
from textrelu.data.image_sets import CIFAR10_BATCHES, CIFAR10_CLASSES, load_cifar10, read_cifar_batch
from textrelu.errors import BadInput


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def batch(n: int = 4, seed: int = 0) -> dict:
    return {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [(seed + i) % 10 for i in range(n)],
        b"data": images(n, seed),
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }


# ---------------------------------------------------------------------------------------------
# a batch as Python 2's cPickle wrote the official files (protocol 2, str as BINSTRING, numpy 1.x)


def _string(data: bytes) -> bytes:
    return b"U" + bytes([len(data)]) + data if len(data) < 256 else b"T" + struct.pack("<i", len(data)) + data


def _int(n: int) -> bytes:
    if 0 <= n < 256:
        return b"K" + bytes([n])
    return b"M" + struct.pack("<H", n) if 0 <= n < 65536 else b"J" + struct.pack("<i", n)


def py2_pickle(data: np.ndarray, labels: list, extra: dict | None = None) -> bytes:
    """The opcodes of the official data_batch_N, byte for byte in their layout."""
    out = b"\x80\x02}q\x01(" + _string(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03" + _int(0) + b"\x85"
    out += _string(b"b") + b"\x87Rq\x04(" + _int(1) + _int(len(data)) + _int(data.shape[1]) + b"\x86"
    out += b"cnumpy\ndtype\nq\x05" + _string(b"u1") + _int(0) + _int(1) + b"\x87Rq\x06("
    out += _int(3) + _string(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff" + _int(0) + b"tb"
    out += b"\x89" + _string(data.tobytes()) + b"tb"
    out += _string(b"labels") + b"]q\x07(" + b"".join(_int(label) for label in labels) + b"e"
    out += _string(b"batch_label") + _string(b"training batch 1 of 5")
    out += (
        _string(b"filenames")
        + b"]q\x08("
        + b"".join(_string(b"f%d.png" % i) for i in range(len(data)))
        + b"e"
    )
    for key, value in (extra or {}).items():
        out += _string(key) + value
    return out + b"u."


def trusted_load(blob: bytes):
    """pickle.load on a pickle this test made itself: what the safe reader must agree with."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy 2 warns about numpy.core
        return pickle.loads(blob, encoding="bytes")


def assert_same(read: dict, expected: dict):
    assert read.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            assert isinstance(read[key], np.ndarray) and read[key].dtype == value.dtype
            np.testing.assert_array_equal(read[key], value)
        else:
            assert read[key] == value and type(read[key]) is type(value)


def test_the_official_python2_layout_is_read_as_pickle_would(tmp_path):
    data = images(3)
    blob = py2_pickle(data, [3, 0, 9])
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    assert_same(read_cifar_batch(path), trusted_load(blob))
    assert read_cifar_batch(path)[b"filenames"] == [b"f0.png", b"f1.png", b"f2.png"]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol_is_read_as_pickle_would(tmp_path, protocol):
    obj = batch() | {
        b"num_vis": 3072,
        b"big": 2**70,
        b"float": 0.5,
        b"flags": [True, False, None],
        b"text": "unicode é",
        b"empty": b"",
        b"tuple": (1, (2, 3)),
        b"i8": np.arange(5) - 2,
        b"f4": np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3),
        b">i4": np.arange(4, dtype=">i4"),
        b"fortran": np.asfortranarray(np.arange(6, dtype=np.uint8).reshape(2, 3)),
        b"scalar": np.int64(7),
        "str key": 1,
    }
    blob = pickle.dumps(obj, protocol=protocol)
    path = tmp_path / "test_batch"
    path.write_bytes(blob)
    assert_same(read_cifar_batch(path), trusted_load(blob))


def write_py2_batches(folder: Path, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True)
    X, y = images(6 * n), np.arange(6 * n) % 10
    for k, name in enumerate(CIFAR10_BATCHES + ["test_batch"]):
        (folder / name).write_bytes(py2_pickle(X[k * n : (k + 1) * n], y[k * n : (k + 1) * n].tolist()))
    meta = (
        b"\x80\x02}q\x01("
        + _string(b"label_names")
        + b"]q\x02("
        + b"".join(_string(c.encode()) for c in CIFAR10_CLASSES)
        + b"e"
        + _string(b"num_vis")
        + _int(3072)
        + b"u."
    )
    (folder / "batches.meta").write_bytes(meta)
    return X, y


def test_load_cifar10_reads_official_style_batches(tmp_path):
    X, y = write_py2_batches(tmp_path / "cifar-10-batches-py")
    data = load_cifar10(tmp_path)
    np.testing.assert_allclose(data.X_train, X[:20] / 255.0, atol=1e-7)
    assert data.y_train.tolist() == y[:20].tolist() and data.classes == CIFAR10_CLASSES
    np.testing.assert_allclose(np.concatenate([data.X_valid, data.X_test]), X[20:] / 255.0, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# hostile pickles: refused, and their code never runs


class Call:
    """Pickles as a call of `func(*args)`: what an attacker puts in a batch."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker: Path) -> dict:
    touch = f"touch {marker}"
    return {
        "os.system": Call(os.system, touch),
        "builtins.exec": Call(builtins.exec, f"open({str(marker)!r}, 'w').write('pwned')"),
        "builtins.eval": Call(builtins.eval, f"open({str(marker)!r}, 'w')"),
        "subprocess.call": Call(subprocess.call, ["touch", str(marker)]),
        "getattr chain": Call(getattr, Call(__import__, "os"), "system"),  # a REDUCE on a REDUCE
    }


PLACES = {
    "the whole file": lambda evil: evil,
    "the data": lambda evil: {b"data": evil, b"labels": [0]},
    "inside the labels": lambda evil: {b"data": images(1), b"labels": [evil]},
    "a key nobody reads": lambda evil: batch() | {b"extra": [{"deep": (evil,)}]},
}


def test_the_payloads_are_live_under_pickle_load(tmp_path):
    """The control: plain pickle.load on these files does run their code."""
    for name, evil in payloads(tmp_path / "marker").items():
        if name == "getattr chain":
            continue  # (it yields os.system without calling it)
        pickle.loads(pickle.dumps(evil))
        assert (tmp_path / "marker").exists(), name
        (tmp_path / "marker").unlink()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize(
    "payload", ["os.system", "builtins.exec", "builtins.eval", "subprocess.call", "getattr chain"]
)
def test_a_batch_that_calls_anything_else_is_refused_and_runs_nothing(tmp_path, protocol, place, payload):
    marker = tmp_path / "marker"
    blob = pickle.dumps(PLACES[place](payloads(marker)[payload]), protocol=protocol)
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    named = r"(posix|builtins|__builtin__|subprocess|commands)\.\w+"  # (protocols 0-2 use Python 2's names)
    with pytest.raises(BadInput, match=rf"{path}: not read: the pickle names {named}"):
        read_cifar_batch(path)
    assert not marker.exists()


def test_load_cifar10_refuses_a_hostile_batch_without_running_it(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_py2_batches(folder)
    marker = tmp_path / "marker"
    (folder / "data_batch_3").write_bytes(
        pickle.dumps({b"data": Call(os.system, f"touch {marker}")}, protocol=2)
    )
    with pytest.raises(
        BadInput, match=r"data_batch_3: not read: the pickle names posix\.system\. A CIFAR-10 batch"
    ):
        load_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(py2_pickle(images(4), [0] * 4))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": Call(os.system, f"touch {marker}")}))
    with pytest.raises(BadInput, match=r"batches\.meta: not read: the pickle names posix\.system"):
        load_cifar10(tmp_path)
    assert not marker.exists()


HOSTILE_OPCODES = {
    # protocol 0's INST and OBJ, and NEWOBJ, build objects of any class without REDUCE
    "INST": b"(S'touch marker'\nios\nsystem\n.",
    "OBJ": b"(cos\nsystem\nS'touch marker'\no.",
    "NEWOBJ": b"\x80\x02cnumpy\nndarray\n)\x81.",
    "EXT1": b"\x80\x02\x82\x01.",
    "BINPERSID": b"\x80\x02U\x01x\x51.",
    "allowed module, other name": b"\x80\x02cnumpy\nload\nU\x01x\x85R.",
    "STACK_GLOBAL of built strings": b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x05touch\x85R.",
}


@pytest.mark.parametrize("name", list(HOSTILE_OPCODES))
def test_opcodes_that_build_other_objects_are_refused(tmp_path, name):
    path = tmp_path / "data_batch_1"
    path.write_bytes(HOSTILE_OPCODES[name])
    with pytest.raises(BadInput, match=rf"{path}: not read: (pickle opcode|the pickle names)"):
        read_cifar_batch(path)


def numpy_misuse() -> dict:
    """The accepted numpy callables, given what a batch never holds."""
    object_array = pickle.dumps(np.array([1, "x"], dtype=object), protocol=2)
    structured = pickle.dumps(np.zeros(2, dtype=[("a", "u1"), ("b", "f4")]), protocol=2)
    return {
        "object array": (object_array, "numpy dtype 'O"),
        "structured dtype": (structured, "numpy dtype 'V5'|a structured"),
        "codecs.encode as rot13": (
            b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.",
            "not a readable CIFAR-10 batch .*codecs.encode with 'rot13'",
        ),
        "short array data": (
            b"\x80\x02cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b"
            b"\x87R(K\x01K\x05\x85cnumpy\ndtype\nX\x02\x00\x00\x00u1\x89\x88\x87R(K\x03"
            b"X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89C\x03abctb.",
            r"3 bytes of data for a uint8 array of shape \(5,\)",
        ),
    }


@pytest.mark.parametrize("name", list(numpy_misuse()))
def test_misused_numpy_callables_are_refused(tmp_path, name):
    blob, message = numpy_misuse()[name]
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    with pytest.raises(BadInput, match=rf"{path}: .*({message})"):
        read_cifar_batch(path)


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"", "not a readable CIFAR-10 batch"),
        (pickle.dumps(batch(), protocol=2)[:-40], "not a readable CIFAR-10 batch"),  # truncated
        (b"\x80\x02h\x05.", "not a readable CIFAR-10 batch"),  # a memo entry never stored
        (b"\x80\x02K\x01K\x02.", "not a readable CIFAR-10 batch .*2 values left at STOP"),
        (pickle.dumps([1, 2], protocol=2), "not a CIFAR-10 batch: the pickle holds a list, not a dict"),
        (b"\x80\x02}(]K\x01u.", "not a readable CIFAR-10 batch .*unhashable"),  # a list as a dict key
        (b"\x80\x02K\x01)R.", "not a readable CIFAR-10 batch .*REDUCE of something other"),
    ],
)
def test_broken_pickles_fail_naming_the_file(tmp_path, blob, message):
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    with pytest.raises(BadInput, match=rf"{path}: {message}"):
        read_cifar_batch(path)


@pytest.mark.parametrize(
    "contents, message",
    [
        ({b"data": images(2), b"labels": [1, 10]}, r"label 1 is 10, not a class number 0\.\.9"),
        ({b"data": images(2), b"labels": [1, "2"]}, r"label 1 is '2'"),
        ({b"data": images(2), b"labels": [1]}, "2 images but 1 labels"),
        (
            {b"data": images(2)[:, :100], b"labels": [1, 2]},
            r"'data' should be a \(n, 3072\) uint8 array .*uint8 \(2, 100\)",
        ),
        (
            {b"data": images(2).astype(np.float32), b"labels": [1, 2]},
            r"'data' should be .* found float32 \(2, 3072\)",
        ),
        ({b"labels": [1, 2]}, r"no 'data' entry in this CIFAR-10 batch \(entries: b'labels'\)"),
    ],
)
def test_a_batch_of_the_wrong_shape_fails_naming_the_file_and_value(tmp_path, contents, message):
    folder = tmp_path / "cifar-10-batches-py"
    write_py2_batches(folder)
    (folder / "data_batch_2").write_bytes(pickle.dumps(contents, protocol=2))
    with pytest.raises(BadInput, match=rf"data_batch_2: {message}"):
        load_cifar10(tmp_path)


def test_a_batch_file_too_large_to_be_one_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch(), protocol=2))
    monkeypatch.setattr(image_sets, "CIFAR_BATCH_MAX_BYTES", 1000)
    with pytest.raises(BadInput, match=r"data_batch_1: [\d,]+ bytes, too large for a CIFAR-10 batch"):
        read_cifar_batch(path)


def test_a_batch_of_countless_tiny_objects_is_not_built(tmp_path):
    """A million EMPTY_LISTs in 1 MB would be ~60 MB of lists; 100 million, gigabytes."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02(" + b"]" * (image_sets.CIFAR_BATCH_MAX_OPCODES + 10) + b"l.")
    with pytest.raises(BadInput, match=r"data_batch_1: not read: more than 2,000,000 pickle opcodes"):
        read_cifar_batch(path)


# ---------------------------------------------------------------------------------------------
# the JPEG tar


def jpeg_tar(path: Path, extra=(), mode: str = "w") -> Path:
    Image = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(buffer, "JPEG")
    with tarfile.open(path, mode) as tar:
        for name in ["train/cat/0000.jpg", "train/dog/0000.jpg", "test/cat/0000.jpg", "test/dog/0000.jpg"]:
            info = tarfile.TarInfo(name)
            info.size = len(buffer.getvalue())
            tar.addfile(info, io.BytesIO(buffer.getvalue()))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def test_the_jpeg_tar_reads(tmp_path):
    data = load_cifar10(jpeg_tar(tmp_path / "c.tar"))
    assert data.X_train.shape == (2, 3072) and data.y_train.tolist() == [3, 5]


@pytest.mark.parametrize("mode, cut", [("w", 0.3), ("w", 0.5), ("w:gz", 0.5), ("w:gz", -5)])
def test_a_truncated_jpeg_tar_fails(tmp_path, mode, cut):
    """(A plain tar cut in the zero padding after its end marker is whole: not tested.)"""
    path = jpeg_tar(tmp_path / "c.tar", mode=mode)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut) if cut > 0 else cut])
    with pytest.raises(BadInput, match=rf"{path}: truncated or corrupt tar"):
        load_cifar10(path)


def test_links_and_oversized_members_in_the_jpeg_tar_fail(tmp_path):
    link = tarfile.TarInfo("train/cat/0001.jpg")
    link.type, link.linkname = tarfile.SYMTYPE, "/dev/zero"
    with pytest.raises(BadInput, match=r"train/cat/0001\.jpg is a link or special file, not an image"):
        load_cifar10(jpeg_tar(tmp_path / "link.tar", [(link, b"")]))
    huge = tarfile.TarInfo("train/cat/0002.jpg")
    huge.size = 2 << 20
    with pytest.raises(BadInput, match=r"train/cat/0002\.jpg is 2,097,152 bytes, too large for a 32x32 JPEG"):
        load_cifar10(jpeg_tar(tmp_path / "huge.tar", [(huge, b"\xff" * huge.size)]))
