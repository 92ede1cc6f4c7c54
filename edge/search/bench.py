"""`biogate bench search`: the 1:N index at scale, one query at a time on one thread.

    templates   the gallery: synthetic embeddings (edge.search.synthetic), two per person, as enrolments are
    index_mb    the serialised faiss index (codes, ids, lists, coarse quantiser, direct map), MiB: all the search holds
    build_s     training the IVF lists on a sample, adding every template
    p50_ms, p99_ms   one query at a time (a new sample of an enrolled person), faiss on one thread
    recall_at_10     against exact float32 search (faiss.knn) over the same vectors
    own_person_in_top_10   share of probes whose own person's templates are among the 10 found (a duplicate check)

Flat fp16 below `ivf_from` templates (a scan is quick there), IVF-fp16 above (2 sqrt(N) lists), as SearchService
builds.
"""
from __future__ import annotations

import time

import faiss
import numpy as np

from edge.search.index import FaceIndex
from edge.search.synthetic import EmbeddingGenerator, Spectra, nn_distance_profile


def run(templates: int, *, queries: int = 1000, k: int = 10, nprobe: int = 600, ivf_from: int = 50_000,
        seed: int = 0) -> dict:
    faiss.omp_set_num_threads(1)
    spectra = Spectra.load()
    gen = EmbeddingGenerator(spectra, seed)
    persons = max(1, templates // 2)
    centres = gen.centres(persons)
    vecs = np.empty((templates, 128), np.float32)
    for start in range(0, templates, 100_000):
        rows = np.arange(start, min(templates, start + 100_000))
        vecs[rows] = gen.samples(centres[rows // 2 % persons])
    ids = np.arange(templates, dtype=np.int64)
    kind = "ivf" if templates >= ivf_from else "flat"
    t0 = time.perf_counter()
    index = FaceIndex.build(ids, vecs, kind=kind, nprobe=nprobe, seed=seed)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed + 1)
    person_of_probe = rng.integers(0, persons, queries)
    probes = gen.samples(centres[person_of_probe])
    latencies, found = [], []
    for q in probes:
        t = time.perf_counter()
        _, labels = index.search(q[None, :], k)
        latencies.append((time.perf_counter() - t) * 1000.0)
        found.append(labels[0])
    _, exact = faiss.knn(probes, vecs, k)
    recall = float(np.mean([len(set(f.tolist()) & set(e.tolist())) / k for f, e in zip(found, exact)]))
    # What a duplicate check needs: the probe's own person (their two templates) among the k found.
    own = float(np.mean([np.isin(np.asarray(f) // 2, [p]).any() for f, p in zip(found, person_of_probe)]))
    profile_rows = min(templates, 3811)
    return {
        "templates": templates, "index_mb": round(index.nbytes() / 2 ** 20, 1), "build_s": round(build_s, 2),
        "p50_ms": round(float(np.percentile(latencies, 50)), 3), "p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "recall_at_10": round(recall, 4), "own_person_in_top_10": round(own, 4), "queries": queries, "index": kind, "nprobe": nprobe if kind == "ivf" else None,
        "threads": 1,
        "embeddings": "synthetic: Gaussian person centres and samples with the spectra measured on LFW development "
                      "faces (edge/search/spectra.json), length 1.42",
        "nn_profile_synthetic": nn_distance_profile(vecs[:profile_rows], ids[:profile_rows] // 2, limit=1000),
        "nn_profile_real_lfw": spectra.provenance.get("nn_profile"),
    }
