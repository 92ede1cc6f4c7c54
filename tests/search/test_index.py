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
