"""Cross-cutting helpers every layer may use: the project's exceptions (:mod:`.errors`), atomic and
crash-consistent writes and output-path checks (:mod:`.atomic`), the writers' lock
(:mod:`.locking`), figures (:mod:`.figures`), the CPU cores a thread pool may use
(:mod:`.cores`), and importing Lava safely with signals handled around its runtime
(:mod:`.lava_runtime`).

May import: nothing of the package (the lowest layer).
"""
