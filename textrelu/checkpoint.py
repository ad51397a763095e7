"""Self-describing model files: weights, model arguments, vocabulary, target, config, metrics.

`score` and `evaluate` need nothing but the file. Files are written atomically and read with
`torch.load(weights_only=True)`: they hold only tensors, numbers, strings, lists and dicts.
"""

from pathlib import Path

import torch

from textrelu import __version__
from textrelu.errors import BadInput
from textrelu.io import atomic_path
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
        torch.save(payload, tmp)


def load(path, kind: str | None = None, task: str | None = None) -> dict:
    """Read a checkpoint; clear errors for other files, truncated files, other kinds and tasks."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"model file {path} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds on foreign or cut files
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise BadInput(
            f"{path} is not a readable textrelu model (truncated or another kind of file): {reason}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BadInput(f"{path} is a torch file but not a textrelu model")
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


def build_net(payload: dict) -> SparseRectifierNet:
    """The network of a checkpoint, with its weights, in eval mode."""
    with torch.device("meta"):  # no random initialization of weights about to be replaced
        net = SparseRectifierNet(**payload["model_args"])
    net.load_state_dict(payload["state_dict"], assign=True)
    return net.eval()


def load_stack(net: SparseRectifierNet, payload: dict) -> None:
    """Copy a pre-trained checkpoint's hidden layers into `net`; its output layer stays as it is."""
    stack = {k: v for k, v in payload["state_dict"].items() if k.startswith("layers.")}
    net.load_state_dict(stack, strict=False)
