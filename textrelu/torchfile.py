"""Read a file written by torch.save without importing torch: plain data, tensors as numpy arrays.

    payload = torchfile.read("model.pt")   # dicts, lists, numbers, strings; each tensor a np.ndarray

Scoring reads its model this way, so that it never imports torch (about a second and 200 MB). A
torch file is a zip archive: `data.pkl`, a pickle of the saved object in which each tensor names
its storage by reference, and each storage's raw bytes under `data/<key>`. Unpickling can call any
function a file names, so this reader, like `torch.load(weights_only=True)`, allows only a fixed
table of names and refuses a file that names anything else (`Unreadable`), never calling it:

- `torch._utils._rebuild_tensor_v2`, here a function that lays a numpy array over the storage's
  bytes, after checking that the array stays inside them;
- the legacy storage types (`torch.FloatStorage`, ...), which only name a dtype;
- `collections.OrderedDict`, a tensor's (empty) table of hooks.

Storages kept uncompressed, as torch writes them, are memory-mapped: only the pages read are
loaded, so scoring ten reviews reads a few hundred rows of a first layer of 20,000. The arrays
are read-only views of the file; a file replaced by a rename (as textrelu writes) is safe to
replace while it is read, one overwritten in place is not (as with torch's own mmap loading).
"""

import collections
import io
import mmap
import pickle
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

# The legacy storage types torch.save names, and the numpy dtype of their elements; bfloat16 and
# the quantized types have no numpy dtype, and a file holding them is left to torch.
STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}
LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")  # a zip entry's local header: name and extra lengths last


class Unreadable(Exception):
    """This reader does not take the file: not a torch zip file, a name outside its table, a
    storage it cannot map, or a tensor reaching outside its storage."""


@dataclass(frozen=True, slots=True)
class StorageType:
    """What a storage type's name unpickles to: its dtype, and nothing callable."""

    dtype: str


@dataclass(frozen=True, slots=True)
class StorageRef:
    """What a storage reference unpickles to: its key. The arrays stay with the unpickler, so
    nothing in the pickle can swap or edit the array a tensor is laid over."""

    key: str


def read(path) -> object:
    """The object saved in a torch zip file, its tensors as numpy arrays; Unreadable otherwise."""
    try:
        with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise Unreadable("no single data.pkl in the archive: not a torch zip file")
            prefix = pickles[0].removesuffix("data.pkl")
            big = prefix + "byteorder" in archive.NameToInfo and archive.read(prefix + "byteorder") == b"big"
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            return _Unpickler(archive, prefix, mapped, ">" if big else "<").load()
    except Unreadable:
        raise
    except Exception as e:  # noqa: BLE001 - whatever a foreign or edited file breaks: torch's reader decides
        raise Unreadable(f"{type(e).__name__}: {str(e)[:200]}") from None


class _Unpickler(pickle.Unpickler):
    """data.pkl's unpickler: the names of the table, storages from the archive.

    pickle's own (C) unpickler calls only what `find_class` returns and what the file's objects
    are. Here those are the rebuild method (which checks every argument), OrderedDict, and plain
    data, storage types and references, and read-only arrays, none of which runs a file's code."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, mapped: mmap.mmap, byteorder: str):
        super().__init__(io.BytesIO(archive.read(prefix + "data.pkl")))
        self.archive, self.prefix, self.mapped, self.byteorder = archive, prefix, mapped, byteorder
        self.storages = {}  # key -> 1-d array of its elements; tensors that share a storage share it

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self.rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(STORAGE_DTYPES[name])
        raise Unreadable(f"it names {module}.{name}, which this reader does not call")

    def persistent_load(self, pid) -> StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise Unreadable(f"unknown persistent id {str(pid)[:80]}")
        _, kind, key, _, numel = pid
        if not isinstance(kind, StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise Unreadable(f"malformed storage reference {str(pid)[:80]}")
        dtype = np.dtype(kind.dtype).newbyteorder(self.byteorder)
        if key not in self.storages:
            self.storages[key] = self.storage_array(self.prefix + "data/" + key, dtype, numel)
        if self.storages[key].dtype != dtype or len(self.storages[key]) != numel:
            raise Unreadable(f"storage {key} is referenced with two dtypes or sizes")
        return StorageRef(key)

    def storage_array(self, name: str, dtype: np.dtype, numel: int) -> np.ndarray:
        """The elements of the archive's record `name`: mapped where stored, else decompressed."""
        info = self.archive.NameToInfo.get(name)
        if info is None or numel < 0 or info.file_size != numel * dtype.itemsize:
            raise Unreadable(f"storage record {name} is missing or not {numel} elements long")
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 1:
            return np.frombuffer(self.archive.read(name), dtype=dtype)
        header = self.mapped[info.header_offset : info.header_offset + LOCAL_HEADER.size]
        if len(header) != LOCAL_HEADER.size:
            raise Unreadable(f"storage record {name} lies outside the file")
        *_, name_length, extra_length = LOCAL_HEADER.unpack(header)
        start = info.header_offset + LOCAL_HEADER.size + name_length + extra_length
        if start + info.file_size > len(self.mapped):
            raise Unreadable(f"storage record {name} lies outside the file (truncated?)")
        return np.frombuffer(self.mapped, dtype=dtype, count=numel, offset=start)

    def rebuild_tensor(self, ref, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
        """A tensor of `size` with `stride` (in elements) from element `offset` of storage `ref`,
        as a read-only numpy array; Unreadable where it would reach outside the storage."""
        if not isinstance(ref, StorageRef):
            raise Unreadable("a tensor without a storage")
        shape_ok = isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
        if not shape_ok or not all(type(n) is int and n >= 0 for n in (offset, *size, *stride)):
            raise Unreadable(f"a tensor of size {size!r}, stride {stride!r}, offset {offset!r}")
        elements = self.storages[ref.key]
        if 0 in size:
            return np.empty(size, dtype=elements.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= len(elements):
            raise Unreadable(f"a tensor reaches element {last} of a storage of {len(elements)}")
        itemsize = elements.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            elements[offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False
        )
        return view if view.flags.c_contiguous else np.ascontiguousarray(view)
