"""Self-describing model files: weights, model arguments, vocabulary, target, config, metrics.

`score` and `evaluate` need nothing but the file. Files are written atomically by torch.save and
hold only tensors, numbers, strings, lists and dicts. Two readers, with the same checks and the
same errors:

- `load`: `torch.load(weights_only=True)`, the reference; tensors come back as torch tensors;
- `load_arrays`: `torchfile.read`, the same table of allowed names without torch; tensors come
  back as numpy arrays, for scoring on the CPU (nn/inference.py). It gives None for a file it does
  not take (another format, a dtype numpy lacks, a refused name), which `load` then reads or refuses.

torch is imported by the functions that use it, so that `load_arrays` runs without it.
"""

import errno
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from textrelu import __version__
from textrelu.data.vocab import Vocabulary
from textrelu.errors import BadInput
from textrelu.io import atomic_path
from textrelu.nn.inference import ArrayNet
from textrelu.nn.targets import Target
from textrelu.torchfile import Unreadable, read

if TYPE_CHECKING:
    from textrelu.nn.model import SparseRectifierNet

FORMAT = "textrelu"
CHECKPOINT_KINDS = (
    "pretrained",
    "model",
    "image-pretrained",
    "image-model",
)  # text and image, pre-trained and fine-tuned


def save(
    path,
    kind: str,
    net: "SparseRectifierNet",
    model_args: dict,
    config: dict,
    metrics: dict,
    vocab: dict | None = None,
    target: dict | None = None,
) -> None:
    """Write one checkpoint file atomically."""
    import torch

    if kind not in CHECKPOINT_KINDS:
        raise ValueError(f"kind must be one of {CHECKPOINT_KINDS}, got {kind!r}")
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    payload = {
        "format": FORMAT,
        "kind": kind,
        "version": __version__,
        "model_args": model_args,
        "state_dict": state,
        "vocab": vocab,
        "target": target,
        "config": config,
        "metrics": metrics,
    }
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        # torch's writer failed (a full disk gives "unexpected pos ..."): the payload is plain data
        except RuntimeError as e:
            reason = (str(e).splitlines() or ["write failed"])[0][:120]
            raise OSError(
                errno.EIO, f"cannot write the model file ({reason}); is the disk full?", str(path)
            ) from None


def load(path, kind: str | None = None, task: str | None = None) -> dict:
    """Read a checkpoint; clear errors for other files, truncated files, other kinds and tasks."""
    import torch

    path = existing(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (PermissionError, IsADirectoryError) as e:  # other OSErrors: a cut file, below
        raise BadInput(f"cannot read model file {path}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - torch raises many kinds on foreign or cut files
        text = str(e)
        if "weights_only" in text or "Weights only load failed" in text:
            # torch's advice (load with weights_only=False) would run the file's code: never give it
            reason = "it holds Python objects besides tensors and plain data, which no textrelu model does"
        else:
            reason = (text.splitlines() or [type(e).__name__])[0][:200]
        raise BadInput(
            f"{path} is not a readable textrelu model (truncated or another kind of file): {reason}"
        ) from None
    return checked(path, payload, kind, task, torch.Tensor, build_net)


def load_arrays(path, kind: str | None = None, task: str | None = None) -> dict | None:
    """`load` without torch: the same payload and checks, each tensor a read-only numpy array;
    None for a file that only `load` can read or refuse (torchfile.Unreadable)."""
    path = existing(path)
    try:
        payload = read(path)
    except Unreadable:
        return None
    return checked(path, payload, kind, task, np.ndarray, build_array_net)


def existing(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"model file {path} not found")
    return path


def checked(path: Path, payload, kind: str | None, task: str | None, tensor_type: type, build) -> dict:
    """`payload` when it is a textrelu model of `kind` for `task` whose parts all fit
    (`check_payload`, with tensors of `tensor_type` and the network built by `build`)."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BadInput(f"{path} is a torch file but not a textrelu model")
    check_payload(path, payload, tensor_type, build)
    if kind is not None and payload["kind"] != kind:
        hint = {
            "pretrained": "use a file written by `textrelu pretrain`",
            "model": "use a file written by `textrelu finetune`",
            "image-pretrained": "use the pretrained.pt of a `textrelu images` run",
            "image-model": "use the model.pt of a `textrelu images` run",
        }[kind]
        raise BadInput(f"{path} is a {payload['kind']} file, not a {kind} one: {hint}")
    if task is not None and payload["target"] and payload["target"]["task"] != task:
        raise BadInput(f"{path} was trained for --task {payload['target']['task']}, not {task}")
    return payload


def damaged(path, problem: str) -> BadInput:
    return BadInput(
        f"{path} is a damaged or edited textrelu model file ({problem}); write it again with the "
        "command that made it"
    )


def check_payload(path, payload: dict, tensor_type: type, build) -> None:
    """Every part a checkpoint's readers use is there and fits: the kind, the network's arguments
    and weights (names and shapes, `build` building the network from them), the vocabulary and the
    target. An edited file fails here with BadInput naming it, not later with a traceback."""
    if payload.get("kind") not in CHECKPOINT_KINDS:
        raise damaged(path, f"unknown kind {payload.get('kind')!r}")
    for key, kinds in (("model_args", dict), ("state_dict", dict), ("config", dict), ("metrics", dict)):
        if not isinstance(payload.get(key), kinds):
            raise damaged(path, f"{key} missing or not a table")
    if not all(isinstance(v, tensor_type) for v in payload["state_dict"].values()):
        raise damaged(path, "state_dict holds something other than tensors")
    try:
        build(payload)  # given the file's tensors: copies nothing
    except BadInput as e:
        raise damaged(path, str(e)) from None
    text = payload["kind"] in ("pretrained", "model")
    try:
        if text:
            Vocabulary.from_dict(payload["vocab"])
        if payload["kind"] in ("model", "image-model"):
            Target(**payload["target"])
    except Exception as e:  # noqa: BLE001 - whatever an edit broke
        raise damaged(path, f"vocab or target: {type(e).__name__}: {str(e)[:120]}") from None
    if text and payload["model_args"].get("n_features") != len(payload["vocab"]["terms"]):
        raise damaged(path, "its vocabulary and its network's inputs differ in size")


def build_net(payload: dict) -> "SparseRectifierNet":
    """The network of a checkpoint, with its weights, in eval mode; BadInput when the arguments
    and the weights do not fit (names, shapes)."""
    import torch

    from textrelu.nn.model import SparseRectifierNet

    try:
        with torch.device("meta"):  # no random initialization of weights about to be replaced
            net = SparseRectifierNet(**payload["model_args"])
        net.load_state_dict(payload["state_dict"], assign=True)
    except (TypeError, ValueError, KeyError, RuntimeError, AttributeError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise BadInput(f"network does not fit its weights: {reason}") from None
    return net.eval()


def build_array_net(payload: dict) -> ArrayNet:
    """The network of a checkpoint read by `load_arrays`, for inference without torch; BadInput
    when the arguments and the weights do not fit, as `build_net` says."""
    try:
        return ArrayNet.from_state(payload["model_args"], payload["state_dict"])
    except (TypeError, ValueError, KeyError, AttributeError) as e:  # what an edited argument breaks
        raise BadInput(f"network does not fit its weights: {type(e).__name__}: {str(e)[:200]}") from None


def load_stack(net: "SparseRectifierNet", payload: dict) -> None:
    """Copy a pre-trained checkpoint's hidden layers into `net`; its output layer stays as it is."""
    stack = {k: v for k, v in payload["state_dict"].items() if k.startswith("layers.")}
    net.load_state_dict(stack, strict=False)
