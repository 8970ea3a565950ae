"""Host-side cosine k-nearest-neighbour search over a corpus of embeddings."""

from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess


class CosineKNN(AbstractProcess):
    """Holds the corpus (embeddings and labels); each window it receives a batch of query
    embeddings and emits the ``k`` most cosine-similar corpus ids and their scores::

        ids[b], scores[b] = top_k(cos(query[b], corpus))     at (t - offset) % T == 0

    The search is the ``index`` passed in (the package's is
    :class:`lava_retrieval.search.index.CosineIndex`: exact, best first, ties by corpus order),
    so this process depends on no search code. It runs on the host CPU, as in the paper.

    Parameters
    ----------
    index : object
        The corpus, searchable: ``len(index)`` vectors of ``index.dim_`` dimensions, and
        ``index.search(queries, k)`` giving ``(scores, ids)``, each (B, k).
    k : int
    batch_size : int
        Queries per window (B).
    time_steps : int
        T: a batch of queries arrives every T steps.
    offset : int
        Steps by which the windows it serves start after the encoder's (the embedding layer's
        depth under pipelined timing; default 0).
    """

    def __init__(
        self,
        *,
        index,
        k: int,
        batch_size: int,
        time_steps: int,
        offset: int = 0,
        name: str | None = None,
    ) -> None:
        if not 0 < k <= len(index):
            raise ValueError(f"k must lie in 1..{len(index)}, got {k}")
        super().__init__(index=index, k=k, time_steps=time_steps, offset=offset, name=name)
        self.query = InPort(shape=(batch_size, int(index.dim_)))
        self.ids = OutPort(shape=(batch_size, k))
        self.scores = OutPort(shape=(batch_size, k))
