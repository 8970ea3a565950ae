"""The ANNs of the paper's family: the model and its QCFS activation (:mod:`.model`), one batched
function for embeddings and accuracy (:mod:`.inference`), the checkpoint format
(:mod:`.checkpoint`), the training record (:mod:`.config`) and the training loop
(:mod:`.training`).

May import: ``common``, ``data``.
"""
