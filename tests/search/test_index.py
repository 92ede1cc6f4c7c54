"""The faiss face index: removal really removes, flat and IVF agree, quantisation keeps neighbours."""
from __future__ import annotations

import numpy as np

from edge.search.index import FaceIndex, TemplateIndex
from tests.search.helpers import People


def test_removed_customer_never_comes_back():
    people = People()
    index = TemplateIndex()
    for i in range(30):
        index.add(f"tpl_{i}", f"cus_{i % 10}", people.face(f"p{i % 10}"))
    probe = people.face("p3")
    assert index.search(probe, k=1)[0].customer_id == "cus_3"
    assert index.remove_customer("cus_3") == 3
    assert len(index) == 27 and "cus_3" not in index.customers()
    hits = index.search(probe, k=30)
    assert len(hits) == 27 and all(h.customer_id != "cus_3" for h in hits)
    assert hits[0].distance > 1.0          # the nearest left is somebody else, far away


def test_flat_and_ivf_find_the_same_neighbours_and_remove_alike():
    rng = np.random.default_rng(1)
    people = People(3)
    vecs = np.stack([people.face(f"p{i % 400}", noise=0.05) for i in range(4000)])
    ids = np.arange(4000)
    flat = FaceIndex.build(ids, vecs, kind="flat")
    ivf = FaceIndex.build(ids, vecs, kind="ivf", nlist=64, nprobe=16)
    queries = vecs[rng.choice(4000, 50, replace=False)]
    exact = np.argsort(np.linalg.norm(vecs[None] - queries[:, None], axis=2), axis=1)[:, :10]
    for index in (flat, ivf):
        _, found = index.search(queries, 10)
        recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
        assert recall >= 0.95, (index.kind, recall)
        assert index.remove(ids[:100]) == 100 and len(index) == 3900
        _, after = index.search(vecs[:100], 10)
        assert not np.isin(after, ids[:100]).any()


def test_strangers_at_nearly_equal_distances_keep_their_exact_order():
    """The 1M bench's case: past the own person, the 10 nearest are strangers 0.001 apart. 8-bit codes (a step of
    0.005 per component) swapped them; the index must return exact search's order, flat and IVF alike."""
    rng = np.random.default_rng(7)

    def on_sphere(n):
        v = rng.standard_normal((n, 128))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    probe = 1.42 * on_sphere(1)[0]
    def around(distances):
        # points at the given distances from the probe, kept at the embedder's length 1.42 (roughly)
        return (probe + on_sphere(len(distances)) * np.asarray(distances)[:, None]).astype(np.float32)

    strangers = around(0.50 + 0.001 * np.arange(10))
    crowd = around(rng.uniform(0.52, 0.6, 990))
    everyone_else = (1.42 * on_sphere(3000)).astype(np.float32)     # the gallery spreads over the whole sphere
    vecs = np.vstack([strangers, crowd, everyone_else])
    ids = np.arange(len(vecs))
    for index in (FaceIndex.build(ids, vecs, kind="flat"),
                  FaceIndex.build(ids, vecs, kind="ivf", nlist=16, nprobe=16)):
        distances, found = index.search(probe[None, :], 10)
        assert found[0].tolist() == list(range(10)), index.kind
        assert np.allclose(distances[0], np.linalg.norm(strangers - probe, axis=1), atol=2e-4)
