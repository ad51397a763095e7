"""Self-describing model files: weights, model arguments, vocabulary, target, config, metrics.

`score` and `evaluate` need nothing but the file. Files are written atomically and read with
`torch.load(weights_only=True)`: they hold only tensors, numbers, strings, lists and dicts.
"""

import errno
from pathlib import Path

import torch

from textrelu import __version__
from textrelu.data.vocab import Vocabulary
from textrelu.errors import BadInput
from textrelu.io import atomic_path
from textrelu.nn.model import SparseRectifierNet
from textrelu.nn.targets import Target

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
    net: SparseRectifierNet,
    model_args: dict,
    config: dict,
    metrics: dict,
    vocab: dict | None = None,
    target: dict | None = None,
) -> None:
    """Write one checkpoint file atomically."""
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
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"model file {path} not found")
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
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BadInput(f"{path} is a torch file but not a textrelu model")
    check_payload(path, payload)
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


def check_payload(path, payload: dict) -> None:
    """Every part a checkpoint's readers use is there and fits: the kind, the network's arguments
    and weights (names and shapes), the vocabulary and the target. An edited file fails here with
    BadInput naming it, not later with a traceback."""
    if payload.get("kind") not in CHECKPOINT_KINDS:
        raise damaged(path, f"unknown kind {payload.get('kind')!r}")
    for key, kinds in (("model_args", dict), ("state_dict", dict), ("config", dict), ("metrics", dict)):
        if not isinstance(payload.get(key), kinds):
            raise damaged(path, f"{key} missing or not a table")
    if not all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values()):
        raise damaged(path, "state_dict holds something other than tensors")
    try:
        build_net(payload)  # built on the meta device and given the file's tensors: copies nothing
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


def build_net(payload: dict) -> SparseRectifierNet:
    """The network of a checkpoint, with its weights, in eval mode; BadInput when the arguments
    and the weights do not fit (names, shapes)."""
    try:
        with torch.device("meta"):  # no random initialization of weights about to be replaced
            net = SparseRectifierNet(**payload["model_args"])
        net.load_state_dict(payload["state_dict"], assign=True)
    except (TypeError, ValueError, KeyError, RuntimeError, AttributeError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise BadInput(f"network does not fit its weights: {reason}") from None
    return net.eval()


def load_stack(net: SparseRectifierNet, payload: dict) -> None:
    """Copy a pre-trained checkpoint's hidden layers into `net`; its output layer stays as it is."""
    stack = {k: v for k, v in payload["state_dict"].items() if k.startswith("layers.")}
    net.load_state_dict(stack, strict=False)
