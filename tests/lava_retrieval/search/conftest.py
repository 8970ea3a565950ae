"""What the search tests share: a local Ray cluster of two nodes, started once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cluster():
    """A local Ray cluster of two nodes (a head and a worker node, one CPU each)."""
    import ray  # the ray extra, which `make setup` installs
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    yield nodes
    if ray.is_initialized():
        ray.shutdown()
    nodes.shutdown()
