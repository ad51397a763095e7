"""Image sets of the paper's benchmarks, read from their official files and split as in the paper.

    from textrelu.data.image_sets import load_mnist
    data = load_mnist("../shared/data/mnist")   # ImageData: X_* (n, n_features) float32, y_* int64

- MNIST (idx files, gzipped or not): train = first 50,000 training images, validation = last 10,000
  training images, test = the 10,000 t10k images. Pixels in [0, 1], 784 features.
- CIFAR-10 (the python pickle batches, or the JPEG tar {train,test}/<class>/NNNN.jpg): train = the
  50,000 training images, validation = first 5,000 test images, test = last 5,000 test images.
  The batches are never unpickled (a pickle can run any code): `read_cifar_batch` walks their
  opcodes and builds only dicts, lists, numbers, strings and numpy arrays.
  Pixels in [0, 1], 3072 features in channel-major order (red plane, green, blue; 32x32 each) for
  both sources. The JPEG tar is sorted by class, so its images are interleaved by number (image
  0000 of every class, then 0001, ...): validation, test and `subset` then hold every class equally.
  The official pickle batches keep their own (shuffled) order.
- NORB (binary matrix `.mat` files, gzipped or not): jittered-cluttered NORB (norb-*-training-NN /
  -testing-NN files, 2x108x108 stereo pairs, 6 classes) when present, else small NORB (smallnorb-*,
  2x96x96, 5 classes). Each stereo pair is subsampled by area averaging to 2x32x32 and scaled into
  [-1, 1], 2048 features. Validation = the last 58,428/291,600 share of the training files (the
  paper's 233,172/58,428 split of jittered-cluttered NORB), test = the testing files.

`ShiftedImages` serves training images shifted at random (data augmentation, not in the paper).
"""

import gzip
import io
import os
import pickletools
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from textrelu.data.readers import EndCheckedTarInfo, tar_end_problem
from textrelu.errors import BadInput
from textrelu.nn.batches import ArrayData


@dataclass
class ImageData:
    """One dataset, split: X_* (n, n_features) float32, y_* (n,) int64 class indices into `classes`."""

    name: str
    classes: list
    shape: tuple  # (channels, height, width) of one image; n_features = their product
    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


def hold_out(name, classes, shape, X, y, n_valid: int, X_test, y_test) -> ImageData:
    """The split of MNIST and NORB: the last `n_valid` training images validate."""
    return ImageData(
        name, classes, shape, X[:-n_valid], y[:-n_valid], X[-n_valid:], y[-n_valid:], X_test, y_test
    )


def _open(path: Path):
    """A binary file, gunzipped on the fly when its name ends in .gz."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _find(folder: Path, name: str) -> Path:
    """`name` or `name.gz` in `folder`; the error names the file that is missing."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise BadInput(f"{folder}: {name} (or {name}.gz) is missing")


def _read_exact(f, n_bytes: int, path: Path) -> bytes:
    data = f.read(n_bytes)
    if len(data) != n_bytes:
        raise BadInput(f"{path}: file is truncated (expected {n_bytes} more bytes, found {len(data)})")
    return data


# ---------------------------------------------------------------------------------------------
# MNIST: idx files

# idx type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/)
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_VALID = 10_000


def read_idx(path) -> np.ndarray:
    """An idx file: magic 0x00 0x00 <type> <ndim>, ndim big-endian int32 sizes, then the data."""
    path = Path(path)
    with _open(path) as f:
        magic = _read_exact(f, 4, path)
        if magic[:2] != b"\x00\x00" or magic[2] not in IDX_TYPES or magic[3] == 0:
            raise BadInput(
                f"{path}: bad magic number 0x{magic.hex()}; not an idx file "
                "(expected 0x0000 then a type byte such as 0x08 and the number of dims)"
            )
        dims = tuple(np.frombuffer(_read_exact(f, 4 * magic[3], path), ">i4").tolist())
        dtype = np.dtype(IDX_TYPES[magic[2]])
        data = _read_exact(f, int(np.prod(dims)) * dtype.itemsize, path)
    return np.frombuffer(data, dtype).reshape(dims)


def _mnist_part(folder: Path, part: str):
    images_name, labels_name = MNIST_FILES[part]
    images_path, labels_path = _find(folder, images_name), _find(folder, labels_name)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise BadInput(
            f"{images_path} should hold (n, rows, cols) images and {labels_path} (n,) "
            f"labels; found shapes {images.shape} and {labels.shape}"
        )
    if len(images) != len(labels):
        raise BadInput(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    return images.reshape(len(images), -1).astype(np.float32) / 255.0, labels.astype(np.int64)


def load_mnist(data_dir) -> ImageData:
    """MNIST from the four idx files (gzipped or not) in `data_dir`; split 50k/10k/10k."""
    folder = Path(data_dir)
    X, y = _mnist_part(folder, "train")
    X_test, y_test = _mnist_part(folder, "test")
    n_valid = MNIST_VALID if len(X) > 2 * MNIST_VALID else max(1, len(X) // 6)  # tiny files: 1/6
    side = int(round(X.shape[1] ** 0.5))
    return hold_out("mnist", [str(d) for d in range(10)], (1, side, side), X, y, n_valid, X_test, y_test)


# ---------------------------------------------------------------------------------------------
# CIFAR-10: python pickle batches, or the JPEG tar

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


# A batch is a ~31 MB file; more than this is not one, and would only be read into memory.
CIFAR_BATCH_MAX_BYTES = 256 << 20
# A batch is ~40,000 pickle opcodes (two per label and file name). Each may make a Python object:
# a file of a million one-byte EMPTY_LISTs would take gigabytes, so there is a cap on them too.
CIFAR_BATCH_MAX_OPCODES = 2_000_000
# The largest JPEG member of the tar read: a 32x32 JPEG is a few KB, a bigger member is not one.
CIFAR_JPEG_MAX_BYTES = 1 << 20

# The only callables a CIFAR-10 batch names (numpy's array and dtype rebuilders; codecs.encode and
# bytes, which Python 3 pickles of protocol 0-2 use for bytes), and what each is taken as. None of
# them is imported or called: _PickleReader builds the values itself.
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy.core.numeric", "_frombuffer"): "frombuffer",  # protocol 5
    ("numpy._core.numeric", "_frombuffer"): "frombuffer",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("_codecs", "encode"): "encode",
    ("builtins", "bytes"): "bytes",
    ("__builtin__", "bytes"): "bytes",  # what Python 3 writes for builtins at protocols 0-2
}
_PLAIN_DTYPE = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248])")  # bool, integers, floats: no objects
_PICKLE_VALUES = {  # opcode -> how its argument becomes the value pushed
    **dict.fromkeys(
        [
            "INT",
            "BININT",
            "BININT1",
            "BININT2",
            "LONG",
            "LONG1",
            "LONG4",
            "FLOAT",
            "BINFLOAT",
            "UNICODE",
            "BINUNICODE",
            "SHORT_BINUNICODE",
            "BINUNICODE8",
            "BINBYTES",
            "SHORT_BINBYTES",
            "BINBYTES8",
        ],
        lambda arg: arg,
    ),
    # Python 2 str, as the official batches hold it: bytes, as pickle.load(encoding="bytes") gives
    **dict.fromkeys(["STRING", "BINSTRING", "SHORT_BINSTRING"], lambda arg: arg.encode("latin-1")),
    "BYTEARRAY8": bytearray,
    "NONE": lambda arg: None,
    "NEWTRUE": lambda arg: True,
    "NEWFALSE": lambda arg: False,
    "EMPTY_DICT": lambda arg: {},
    "EMPTY_LIST": lambda arg: [],
    "EMPTY_TUPLE": lambda arg: (),
}


class _Stub:
    """A numpy array or dtype named by REDUCE, made real by the BUILD that follows it."""

    def __init__(self, kind: str, value=None):
        self.kind, self.value = kind, value


class _PickleReader:
    """Reads the pickle of a CIFAR-10 batch without executing it.

    `pickle.load` imports and calls whatever a file names, so a batch from anyone could run their
    code. This walks the opcodes (pickletools.genops only parses) and carries out the few a batch
    uses: dicts, lists, tuples, numbers, strings (Python 2 str as bytes) and numpy arrays of plain
    dtypes. Any other callable, and any opcode that builds other objects, is refused.
    """

    def __init__(self, path: Path):
        self.path = path
        self.stack, self.marks, self.memo = [], [], {}

    def refuse(self, what: str):
        raise BadInput(
            f"{self.path}: not read: {what}. A CIFAR-10 batch holds only dicts, lists, "
            "numbers, strings and numpy arrays, and nothing else is accepted (a pickle can "
            "run code; this one is never unpickled)"
        )

    def load(self, f):
        for count, (opcode, arg, pos) in enumerate(pickletools.genops(f)):
            if count == CIFAR_BATCH_MAX_OPCODES:
                self.refuse(
                    f"more than {CIFAR_BATCH_MAX_OPCODES:,} pickle opcodes (a batch has about 40,000)"
                )
            name = opcode.name
            if name == "STOP":
                if len(self.stack) != 1 or self.marks:
                    raise ValueError(f"{len(self.stack)} values left at STOP")
                return self.stack[0]
            if name in _PICKLE_VALUES:
                self.stack.append(_PICKLE_VALUES[name](arg))
            elif name not in ("PROTO", "FRAME"):
                handler = getattr(self, f"op_{name}", None)
                if handler is None:
                    self.refuse(f"pickle opcode {name} at byte {pos}")
                handler(arg)
        raise ValueError("no STOP opcode")

    def pop_mark(self) -> list:
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def op_MARK(self, arg):
        self.marks.append(len(self.stack))

    def op_TUPLE(self, arg):
        self.stack.append(tuple(self.pop_mark()))

    def tuple_of(self, n: int):
        if len(self.stack) < n:
            raise ValueError("stack underflow")
        items = tuple(self.stack[len(self.stack) - n :])
        del self.stack[len(self.stack) - n :]
        self.stack.append(items)

    def op_TUPLE1(self, arg):
        self.tuple_of(1)

    def op_TUPLE2(self, arg):
        self.tuple_of(2)

    def op_TUPLE3(self, arg):
        self.tuple_of(3)

    def op_LIST(self, arg):
        self.stack.append(self.pop_mark())

    def op_DICT(self, arg):
        items = self.pop_mark()
        self.stack.append(dict(zip(items[::2], items[1::2])))

    def target(self, kind: type):
        if not self.stack or type(self.stack[-1]) is not kind:
            raise ValueError(f"expected a {kind.__name__} to add to")
        return self.stack[-1]

    def op_APPEND(self, arg):
        value = self.stack.pop()
        self.target(list).append(value)

    def op_APPENDS(self, arg):
        items = self.pop_mark()
        self.target(list).extend(items)

    def op_SETITEM(self, arg):
        value, key = self.stack.pop(), self.stack.pop()
        self.target(dict)[key] = value

    def op_SETITEMS(self, arg):
        items = self.pop_mark()
        self.target(dict).update(zip(items[::2], items[1::2]))

    def op_PUT(self, arg):
        self.memo[arg] = self.stack[-1]

    op_BINPUT = op_LONG_BINPUT = op_PUT

    def op_MEMOIZE(self, arg):
        self.memo[len(self.memo)] = self.stack[-1]

    def op_GET(self, arg):
        self.stack.append(self.memo[arg])

    op_BINGET = op_LONG_BINGET = op_GET

    def push_global(self, module, name):
        kind = _PICKLE_GLOBALS.get((module, name))
        if kind is None:
            self.refuse(f"the pickle names {module}.{name}")
        self.stack.append(_Stub("global", kind))

    def op_GLOBAL(self, arg):
        self.push_global(*arg.split(" ", 1))

    def op_STACK_GLOBAL(self, arg):
        name, module = self.stack.pop(), self.stack.pop()
        if type(module) is not str or type(name) is not str:
            raise ValueError("STACK_GLOBAL takes two strings")
        self.push_global(module, name)

    def op_REDUCE(self, arg):
        args, func = self.stack.pop(), self.stack.pop()
        if not isinstance(func, _Stub) or func.kind != "global" or type(args) is not tuple:
            raise ValueError("REDUCE of something other than an accepted numpy or codecs callable")
        kind, args = func.value, tuple(self.plain(a) for a in args)
        if kind == "reconstruct":  # (numpy.ndarray, (0,), b"b"): an empty array that BUILD fills
            if not args or not isinstance(args[0], _Stub) or args[0].value != "ndarray":
                raise ValueError("numpy _reconstruct of something other than numpy.ndarray")
            self.stack.append(_Stub("array"))
        elif kind == "dtype":
            self.stack.append(_Stub("dtype", self.dtype(args[0])))
        elif kind == "frombuffer":  # protocol 5: (buffer, dtype, shape, order)
            data, dtype, shape, order = args
            self.stack.append(self.array(data, dtype, shape, order == "F"))
        elif kind == "scalar":
            dtype, data = args
            self.stack.append(self.array(data, dtype, (), False)[()])
        elif kind == "encode":  # bytes in a protocol 0-2 pickle: codecs.encode(text, "latin1")
            text, encoding = args
            if type(text) is not str or encoding not in ("latin1", "latin-1"):
                raise ValueError(f"codecs.encode with {encoding!r}")
            self.stack.append(text.encode("latin-1"))
        elif kind == "bytes" and args == ():
            self.stack.append(b"")
        else:
            self.refuse(f"numpy.{kind} called with {len(args)} arguments")

    def op_BUILD(self, arg):
        state, obj = self.stack.pop(), self.stack[-1]
        if not isinstance(obj, _Stub) or obj.kind not in ("array", "dtype") or type(state) is not tuple:
            self.refuse("BUILD of something other than a numpy array or dtype")
        if obj.kind == "dtype":  # (version, byte order, subdtype, names, fields, ...): plain dtypes only
            if len(state) < 5 or state[2:5] != (None, None, None):
                self.refuse("a structured or sub-array numpy dtype")
            order = state[1].decode() if isinstance(state[1], bytes) else state[1]
            if order in ("<", ">"):
                obj.value = obj.value.newbyteorder(order)
        else:  # (version, shape, dtype, is_fortran, raw data)
            if obj.value is not None or len(state) != 5:
                raise ValueError("unexpected numpy array state")
            _, shape, dtype, fortran, data = (self.plain(s) for s in state)
            array = self.array(data, dtype, shape, bool(fortran))
            # numpy's own __setstate__ gives native byte order (_frombuffer, protocol 5, does not)
            obj.value = array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))

    def dtype(self, spec):
        spec = spec.decode("latin-1") if isinstance(spec, bytes) else spec
        if type(spec) is not str or not _PLAIN_DTYPE.fullmatch(spec):
            self.refuse(f"numpy dtype {spec!r}")
        return np.dtype(spec)

    def array(self, data, dtype, shape, fortran: bool) -> np.ndarray:
        if not isinstance(data, (bytes, bytearray)):  # a list here would be an object array
            self.refuse(f"numpy array data of type {type(data).__name__}")
        if not isinstance(dtype, np.dtype):
            raise ValueError("numpy array without a dtype")
        if type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape):
            raise ValueError(f"bad numpy array shape {shape!r}")
        if len(data) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise ValueError(f"{len(data)} bytes of data for a {dtype} array of shape {shape}")
        return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")

    def plain(self, value):
        """The numpy array or dtype of a stub (refused if never built), else the value itself."""
        if isinstance(value, _Stub) and value.kind != "global":
            if value.value is None:
                raise ValueError(f"an unfinished numpy {value.kind} used as a value")
            return value.value
        return value


def read_cifar_batch(path) -> dict:
    """One CIFAR-10 python batch (data_batch_N, test_batch, batches.meta) as the dict that
    pickle.load(f, encoding="bytes") would give, but read without unpickling (see _PickleReader)."""
    path = Path(path)
    size = os.path.getsize(path)
    if size > CIFAR_BATCH_MAX_BYTES:
        raise BadInput(f"{path}: {size:,} bytes, too large for a CIFAR-10 batch (about 31 MB each)")
    reader = _PickleReader(path)
    with open(path, "rb") as f:
        try:
            batch = reader.load(f)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            raise BadInput(f"{path}: not a readable CIFAR-10 batch (a pickled dict): {error}") from None
    if type(batch) is not dict:
        raise BadInput(f"{path}: not a CIFAR-10 batch: the pickle holds a {type(batch).__name__}, not a dict")
    return {key: reader.plain(value) for key, value in batch.items()}


def _batch_entry(batch: dict, key: str, path: Path):
    """batch[b"key"] (as Python 2 wrote it), or batch["key"] (a batch rewritten by Python 3)."""
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    found = ", ".join(repr(k) for k in batch) or "none"
    raise BadInput(f"{path}: no {key!r} entry in this CIFAR-10 batch (entries: {found})")


def _cifar_batch(path: Path, n_classes: int):
    """(images (n, 3072) uint8, labels (n,) int64) of one batch, checked."""
    batch = read_cifar_batch(path)
    data, labels = _batch_entry(batch, "data", path), _batch_entry(batch, "labels", path)
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise BadInput(f"{path}: 'data' should be a (n, 3072) uint8 array of images, found {what}")
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    if not isinstance(labels, list):
        raise BadInput(f"{path}: 'labels' should be a list of class numbers, found {type(labels).__name__}")
    for i, label in enumerate(labels):
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < n_classes:
            raise BadInput(f"{path}: label {i} is {label!r}, not a class number 0..{n_classes - 1}")
    if len(labels) != len(data):
        raise BadInput(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, np.asarray(labels, np.int64)


def _cifar_pickles(folder: Path):
    """(X_train, y_train, X_test, y_test, classes) from data_batch_1..5 and test_batch."""

    def path(name):
        if not (folder / name).is_file():
            raise BadInput(f"{folder}: CIFAR-10 batch {name} is missing")
        return folder / name

    classes = CIFAR10_CLASSES
    if (folder / "batches.meta").is_file():
        names = _batch_entry(read_cifar_batch(path("batches.meta")), "label_names", folder / "batches.meta")
        if not isinstance(names, list) or not all(isinstance(c, (bytes, str)) for c in names):
            raise BadInput(f"{folder / 'batches.meta'}: 'label_names' should be a list of class names")
        classes = [c.decode("utf-8", "replace") if isinstance(c, bytes) else c for c in names]
    train = [_cifar_batch(path(name), len(classes)) for name in CIFAR10_BATCHES]
    X_test, y_test = _cifar_batch(path("test_batch"), len(classes))
    X = np.concatenate([b[0] for b in train])
    y = np.concatenate([b[1] for b in train])
    return X, y, X_test, y_test, classes


def decode_cifar_jpeg(data: bytes, where: str = "image") -> np.ndarray:
    """One 32x32 JPEG -> (3072,) uint8 in CIFAR's channel-major order (3, 32, 32) flattened."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as image:
            if image.size != (32, 32):
                raise BadInput(f"{where} is {image.size[0]}x{image.size[1]}, not 32x32")
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            pixels = np.frombuffer(rgb.tobytes(), np.uint8).reshape(32, 32, 3)  # (rows, cols, RGB)
    except (UnidentifiedImageError, OSError) as e:
        raise BadInput(f"{where}: not a readable JPEG ({e})") from None
    return pixels.transpose(2, 0, 1).reshape(-1)


def _cifar_jpeg_tar(path: Path):
    """(X_train, y_train, X_test, y_test, classes) from a tar of {train,test}/<class>/NNNN.jpg.

    Reading the whole tar takes about 9 s on one core: 2 s to walk the tar, the rest PIL decoding.
    A thread pool was slower: the images are too small for PIL to release the GIL usefully.
    """
    index = {c: i for i, c in enumerate(CIFAR10_CLASSES)}
    parts = {"train": [], "test": []}
    try:
        with tarfile.open(path, tarinfo=EndCheckedTarInfo) as tar:
            for member in tar:
                bits = member.name.split("/")
                if member.isdir() or len(bits) < 3 or not bits[-1].endswith(".jpg") or bits[-3] not in parts:
                    continue
                split, label, file = bits[-3:]
                if label not in index:
                    raise BadInput(
                        f"{path}: {member.name}: class folder {label!r} is not a CIFAR-10 "
                        f"class ({', '.join(CIFAR10_CLASSES)})"
                    )
                if not member.isfile():  # a link or a device: the image would silently be missing
                    raise BadInput(
                        f"{path}: {member.name} is a link or special file, not an image; "
                        "links are not followed"
                    )
                if member.size > CIFAR_JPEG_MAX_BYTES:
                    raise BadInput(
                        f"{path}: {member.name} is {member.size:,} bytes, too large for a 32x32 JPEG"
                    )
                pixels = decode_cifar_jpeg(tar.extractfile(member).read(), f"{path}: {member.name}")
                parts[split].append((file, index[label], pixels))
            problem = tar_end_problem(tar)
            while tar.fileobj.read(1 << 16):  # to the end: a .tar.gz checks its length and CRC there
                pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:  # OSError: also a bad gzip
        raise BadInput(
            f"{path}: truncated or corrupt tar ({error}) after {sum(map(len, parts.values())):,} images"
        ) from None
    if problem is not None:
        raise BadInput(
            f"{path}: truncated or corrupt tar: {problem}, after {sum(map(len, parts.values())):,} images"
        )
    out = []
    for split in ("train", "test"):
        if not parts[split]:
            raise BadInput(f"{path}: no {split}/<class>/*.jpg images in the tar")
        rows = sorted(parts[split], key=lambda r: (r[0], r[1]))  # interleave classes by number
        out += [np.stack([r[2] for r in rows]), np.array([r[1] for r in rows], np.int64)]
    return (*out, CIFAR10_CLASSES)


def load_cifar10(data_dir) -> ImageData:
    """CIFAR-10 from the pickle batches (in data_dir or data_dir/cifar-10-batches-py) or a JPEG
    tar (data_dir itself, or the one .tar in it); split 50k train / 5k validation / 5k test."""
    path = Path(data_dir)
    pickles = next((p for p in (path, path / "cifar-10-batches-py") if (p / "data_batch_1").is_file()), None)
    if pickles is not None:
        X, y, X_test, y_test, classes = _cifar_pickles(pickles)
    else:
        tars = [path] if path.is_file() else sorted(path.glob("*.tar"))
        if len(tars) != 1:
            raise BadInput(
                f"{path}: expected the CIFAR-10 python batches (data_batch_1..5, "
                f"test_batch) or one JPEG .tar; found {len(tars)} .tar files"
            )
        X, y, X_test, y_test, classes = _cifar_jpeg_tar(tars[0])
    X, X_test = X.astype(np.float32) / 255.0, X_test.astype(np.float32) / 255.0
    n_valid = len(X_test) // 2
    return ImageData(
        "cifar10",
        list(classes),
        (3, 32, 32),
        X,
        y,
        X_test[:n_valid],
        y_test[:n_valid],
        X_test[n_valid:],
        y_test[n_valid:],
    )


# ---------------------------------------------------------------------------------------------
# NORB: binary matrix files (https://cs.nyu.edu/~ylclab/data/norb-v1.0/)

# magic (little-endian int32) -> element type
NORB_TYPES = {0x1E3D4C51: "<f4", 0x1E3D4C53: "<f8", 0x1E3D4C54: "<i4", 0x1E3D4C55: "u1", 0x1E3D4C56: "<i2"}
NORB_CLASSES = ["animal", "human", "airplane", "truck", "car"]
NORB_NONE = "none"  # jittered-cluttered NORB's sixth class: no object in the centre
NORB_VALID_SHARE = 58_428 / 291_600  # the paper's validation share of the training files
NORB_SIDE = 32
NORB_CHUNK = 2048  # examples subsampled at a time: a full file does not fit in memory as floats


def read_norb_header(f, path: Path):
    """(dtype, dims) of a NORB binary matrix: magic, ndim, then max(ndim, 3) int32 sizes."""
    magic, ndim = np.frombuffer(_read_exact(f, 8, path), "<i4").tolist()
    if magic not in NORB_TYPES:
        raise BadInput(
            f"{path}: bad magic number 0x{magic & 0xFFFFFFFF:08X}; not a NORB binary "
            "matrix (expected 0x1E3D4C55 for bytes, 0x1E3D4C54 for int32)"
        )
    if not 1 <= ndim <= 16:
        raise BadInput(f"{path}: implausible number of dimensions {ndim}")
    dims = np.frombuffer(_read_exact(f, 4 * max(ndim, 3), path), "<i4")[:ndim]
    return np.dtype(NORB_TYPES[magic]), tuple(dims.tolist())


def read_norb_matrix(path) -> np.ndarray:
    """A whole NORB binary matrix (labels, info; small files)."""
    path = Path(path)
    with _open(path) as f:
        dtype, dims = read_norb_header(f, path)
        data = _read_exact(f, int(np.prod(dims)) * dtype.itemsize, path)
    return np.frombuffer(data, dtype).reshape(dims)


def read_norb_images(path) -> np.ndarray:
    """A NORB -dat file of (n, 2, side, side) uint8 stereo pairs, as (n, 2*32*32) floats in [-1, 1].

    Read and subsampled (area averaging: 3x3 means for 96, overlapping means for 108) chunk by
    chunk, so that a 29,160-pair jittered file never sits in memory as floats at full size.
    """
    path = Path(path)
    with _open(path) as f:
        dtype, dims = read_norb_header(f, path)
        if dtype != np.uint8 or len(dims) != 4 or dims[1] != 2:
            raise BadInput(f"{path}: expected (n, 2, height, width) uint8 stereo pairs, found {dtype} {dims}")
        n, pair = dims[0], int(np.prod(dims[1:]))
        out = np.empty((n, 2 * NORB_SIDE * NORB_SIDE), np.float32)
        for start in range(0, n, NORB_CHUNK):
            rows = min(NORB_CHUNK, n - start)
            chunk = np.frombuffer(_read_exact(f, rows * pair, path), np.uint8).reshape(rows, *dims[1:])
            small = F.adaptive_avg_pool2d(torch.from_numpy(chunk.astype(np.float32)), NORB_SIDE)
            out[start : start + rows] = (small.reshape(rows, -1) / 127.5 - 1.0).numpy()
    return out


def _norb_files(folder: Path, pattern: str):
    """Sorted (dat, cat) file pairs matching pattern; the -cat partner of each -dat must exist."""
    dats = sorted(p for p in folder.glob(pattern) if p.name.endswith(("-dat.mat", "-dat.mat.gz")))
    pairs = []
    for dat in dats:
        cat = dat.with_name(dat.name.replace("-dat.mat", "-cat.mat"))
        if not cat.is_file():
            raise BadInput(f"{folder}: {cat.name} is missing (the labels of {dat.name})")
        pairs.append((dat, cat))
    return pairs


def _norb_part(pairs):
    Xs, ys = [], []
    for dat, cat in pairs:
        X, y = read_norb_images(dat), read_norb_matrix(cat).reshape(-1).astype(np.int64)
        if len(X) != len(y):
            raise BadInput(f"{dat} holds {len(X)} pairs but {cat} {len(y)} labels")
        Xs.append(X)
        ys.append(y)
    return np.concatenate(Xs), np.concatenate(ys)


def load_norb(data_dir) -> ImageData:
    """Jittered-cluttered NORB (norb-*-{training,testing}-NN-{dat,cat}.mat) when present in
    `data_dir`, else small NORB (smallnorb-*-{training,testing}-{dat,cat}.mat); gzipped or not."""
    folder = Path(data_dir)
    for prefix, classes in (("norb-", NORB_CLASSES + [NORB_NONE]), ("smallnorb-", NORB_CLASSES)):  # noqa: B007
        train = _norb_files(folder, f"{prefix}*-training*-dat.mat*")
        test = _norb_files(folder, f"{prefix}*-testing*-dat.mat*")
        if train or test:
            break  # prefix and classes are this set's
    else:
        raise BadInput(
            f"{folder}: no NORB files; expected norb-5x46789x9x18x6x2x108x108-training-01-dat.mat "
            "(jittered-cluttered) or smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat "
            "(small NORB) and their -cat.mat partners, gzipped or not"
        )
    if not train or not test:
        raise BadInput(
            f"{folder}: NORB {'training' if not train else 'testing'} files ({prefix}*) are missing"
        )
    X, y = _norb_part(train)
    X_test, y_test = _norb_part(test)
    for labels in (y, y_test):
        if labels.min() < 0 or labels.max() >= len(classes):
            raise BadInput(f"{folder}: NORB labels outside 0..{len(classes) - 1}")
    n_valid = max(1, round(len(X) * NORB_VALID_SHARE))
    name = "norb" if prefix == "norb-" else "smallnorb"
    return hold_out(name, classes, (2, NORB_SIDE, NORB_SIDE), X, y, n_valid, X_test, y_test)


LOADERS = {"mnist": load_mnist, "cifar10": load_cifar10, "norb": load_norb}


class ShiftedImages(ArrayData):
    """Training images, each moved by a random whole-pixel shift of up to `shift` pixels along
    each axis, a new shift per image and epoch (data augmentation, not in the paper: it uses the
    pixels' layout, so the task is no longer permutation-invariant). Pixels moved in from outside
    repeat the border. Shifts are drawn from their own generator, seeded by `seed`."""

    def __init__(self, X, y, shape: tuple, shift: int, seed: int = 0):
        super().__init__(X, y)
        self.shape, self.shift = tuple(shape), shift
        self.generator = torch.Generator().manual_seed(seed)

    def batches(self, batch_size: int, shuffle: bool = False, generator=None, device="cpu", rows=None):
        for x, y in super().batches(batch_size, shuffle, generator, device, rows):
            yield shift_images(x, self.shape, self.shift, self.generator), y


def shift_images(x: torch.Tensor, shape: tuple, shift: int, generator=None) -> torch.Tensor:
    """Flat images (n, C*H*W), each shifted by (dy, dx) drawn uniformly from [-shift, shift]."""
    n, (c, h, w) = len(x), shape
    if shift == 0 or n == 0:
        return x
    padded = F.pad(x.view(n, c, h, w), (shift, shift, shift, shift), mode="replicate")
    dy, dx = torch.randint(0, 2 * shift + 1, (2, n), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    images = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[images, channels, rows, cols].reshape(n, c * h * w)
