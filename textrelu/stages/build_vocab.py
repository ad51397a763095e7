"""build-vocab: count document frequencies over review files and keep the most frequent terms.

    textrelu build-vocab reviews.csv unlabeled.jsonl --out vocab.txt --ngrams 2 --size 20000

Labels are not read. The vocabulary file (data/vocab.py) records how it was built. With --engine
ray the document frequencies are counted on a Ray cluster (stages/ray_engine.py): the same file.
"""

from pathlib import Path

from textrelu.data.readers import records
from textrelu.data.vocab import Vocabulary, build, from_counts
from textrelu.errors import BadInput
from textrelu.io import check_outputs
from textrelu.progress import report_rejects, say
from textrelu.settings import STAGE_SETTINGS
from textrelu.stages import declare, ray_engine

SETTINGS = STAGE_SETTINGS["build_vocab"]


def build_vocab(files: list, out, quiet: bool = False, **settings) -> Vocabulary:
    """Count terms over `files`, keep the `size` most frequent with df >= `min_df`, write `out`.

    settings: the keys of Terms and Reading (textrelu.settings), e.g. size=20000, ngrams=2."""
    s = SETTINGS.resolve(settings)
    if not files:
        raise BadInput("build-vocab needs at least one review file")
    check_outputs({"--out": out}, files)
    sources = ", ".join(map(str, files))
    if s.engine.engine == "ray":
        df, n_distinct, n_documents, rejects = ray_engine.count_terms(
            files, s.reading, s.terms.ngrams, s.terms.min_df, s.engine.address, quiet
        )
        vocab = from_counts(df, n_documents, s.terms, sources)
    else:
        if s.engine.address is not None:
            raise BadInput("--address is for --engine ray")
        found = records(files, s.reading, lambda m: say(m, quiet))
        vocab, rejects, n_distinct = build(found, s.terms, quiet, sources)
    report_rejects(rejects, quiet)
    vocab.save(out)
    say(
        f"vocabulary: {len(vocab)} terms from {vocab.n_documents} reviews "
        f"({n_distinct} distinct, {len(rejects)} rejected) -> {out}",
        quiet,
    )
    return vocab


def finished(args: dict):
    return Vocabulary.load(args["out"]) if Path(args["out"]).is_file() else None


def summary(vocab: Vocabulary) -> dict:
    return {"terms": len(vocab), "documents": vocab.n_documents}


def lines(metrics: dict) -> list[str]:
    return [f"vocabulary: {metrics['terms']} terms from {metrics['documents']} reviews"]


STAGE = declare(__name__, writes={"out": ("vocab", "vocab.txt")})
