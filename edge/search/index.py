"""The 1:N face index: faiss with 16-bit float codes, ids that really go away when removed.

    index = FaceIndex.empty(kind="flat")                  # or kind="ivf" (trained on the vectors it is built with)
    index.add(ids, vectors); index.remove(ids)
    distances, ids = index.search(probe, k)              # Euclidean distances (not squared), nearest first

Why these choices (see docs/search.md):
- fp16 codes (`QT_fp16`): 256 bytes per embedding, 254 MB at a million with ids and direct map (float32 would be
  512 MB, over the 300 MB budget). 8-bit codes (half that) were tried and not kept: past the probe's own person its
  10 nearest are strangers at nearly equal distances, and 8-bit steps swap their order (recall@10 0.987 for a flat
  scan at 200,000); fp16 keeps 11 significant bits of each component (of the residual, under IVF), which leaves
  the order as exact search gives it. No range to learn either: a later enrolment can never fall outside it.
- Flat (`IndexIDMap2` over `IndexScalarQuantizer`) scans every code: fine up to tens of thousands. IVF
  (`IndexIVFScalarQuantizer`, k-means lists, a direct map) visits `nprobe` of its lists: what a million needs for a
  single query on one thread. These embeddings hold no tight clusters, so a query's true 10 nearest spread over
  many lists: recall is set by the share of the gallery visited (about a fifth to a quarter at a million with
  2 sqrt(N) lists for 0.99; `biogate bench search`). Both remove ids for real (HNSW would only hide them).
- Quantisation only ranks: every decision re-scores the shortlist exactly (edge.search.service).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import faiss
import numpy as np

DIM = 128
CODE = faiss.ScalarQuantizer.QT_fp16
# k-means wants tens of training points per list (faiss warns under 39): the sample grows with the lists.
TRAIN_PER_LIST = 64
MIN_TRAIN_SIZE = 65_536


def default_nlist(n: int) -> int:
    """IVF lists for a gallery of n: 2 sqrt(n) (2,000 at a million), within [16, 4096]."""
    return max(16, min(4096, int(2 * np.sqrt(n))))


def _vectors(x: np.ndarray) -> np.ndarray:
    v = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(-1, DIM))
    if not np.all(np.isfinite(v)):
        raise ValueError("embeddings must be finite")
    return v


class FaceIndex:
    """int64 ids -> fp16 codes. Thread-safe: one lock around faiss calls that read or change the index."""

    def __init__(self, index, kind: str, nprobe: int = 1):
        self._index = index
        self.kind = kind
        self.nprobe = nprobe
        self._lock = threading.Lock()

    @classmethod
    def empty(cls, kind: str = "flat") -> "FaceIndex":
        if kind != "flat":
            raise ValueError("an IVF index is built with FaceIndex.build (it needs vectors to learn its lists)")
        return cls(faiss.IndexIDMap2(faiss.IndexScalarQuantizer(DIM, CODE, faiss.METRIC_L2)), "flat")

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, *, kind: str = "flat", nlist: int | None = None,
              nprobe: int = 600, train_size: int | None = None, seed: int = 0) -> "FaceIndex":
        vecs = _vectors(vectors)
        if kind == "flat":
            index = cls.empty("flat")
        elif kind == "ivf":
            nlist = nlist or default_nlist(len(vecs))
            train_size = train_size or max(MIN_TRAIN_SIZE, TRAIN_PER_LIST * nlist)
            rng = np.random.default_rng(seed)
            sample = vecs[rng.choice(len(vecs), min(len(vecs), train_size), replace=False)]
            quantizer = faiss.IndexFlatL2(DIM)
            ivf = faiss.IndexIVFScalarQuantizer(quantizer, DIM, nlist, CODE, faiss.METRIC_L2)   # residual codes
            ivf.train(sample)         # the k-means lists
            ivf.make_direct_map()
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)   # remove_ids without scanning every list
            ivf.nprobe = nprobe
            index = cls(ivf, "ivf", nprobe)
        else:
            raise ValueError(f"unknown index kind {kind!r} (flat | ivf)")
        if len(vecs):
            index.add(ids, vecs)
        return index

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vecs = _vectors(vectors)
        labels = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
        if len(labels) != len(vecs):
            raise ValueError("one id per vector")
        with self._lock:
            self._index.add_with_ids(vecs, labels)

    def remove(self, ids) -> int:
        labels = np.ascontiguousarray(np.asarray(list(ids), dtype=np.int64).reshape(-1))
        if labels.size == 0:
            return 0
        # IDSelectorArray: what an IVF's hashtable direct map removes by; the flat IDMap2 takes it as well.
        with self._lock:
            return int(self._index.remove_ids(faiss.IDSelectorArray(labels.size, faiss.swig_ptr(labels))))

    def search(self, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, ids), each queries x k, nearest first; missing neighbours have id -1 and distance inf."""
        q = _vectors(probes)
        k = max(1, int(k))
        with self._lock:
            if self.kind == "ivf":
                self._index.nprobe = self.nprobe
            squared, labels = self._index.search(q, k)
        distances = np.sqrt(np.maximum(squared, 0.0)).astype(np.float64)
        distances[labels < 0] = np.inf
        return distances, labels

    def nbytes(self) -> int:
        """Size of the serialised index (codes, ids, lists, quantiser): what it takes in memory, give or take."""
        with self._lock:
            return int(faiss.serialize_index(self._index).size)


@dataclass
class Hit:
    template_id: str
    customer_id: str
    distance: float


@dataclass
class TemplateIndex:
    """The face index keyed the way the store is: template ids and the customers they belong to.

    Face templates only; no image, no payload: an embedding enters, only ids and distances come out."""

    index: FaceIndex = field(default_factory=FaceIndex.empty)
    _next: int = 1
    _by_label: dict = field(default_factory=dict)          # label -> (template_id, customer_id)
    _labels_of: dict = field(default_factory=dict)         # customer_id -> set of labels
    _label_of_template: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __len__(self) -> int:
        return len(self.index)

    def customers(self) -> set[str]:
        with self._lock:
            return set(self._labels_of)

    def add(self, template_id: str, customer_id: str, embedding: np.ndarray) -> None:
        with self._lock:
            if template_id in self._label_of_template:
                return
            label = self._next
            self._next += 1
            self._by_label[label] = (template_id, customer_id)
            self._labels_of.setdefault(customer_id, set()).add(label)
            self._label_of_template[template_id] = label
        self.index.add(np.array([label]), embedding)

    def adopt(self, labels: np.ndarray, keys: list[tuple[str, str]]) -> None:
        """Take over the bookkeeping of vectors already in `index` under `labels` (a bulk build)."""
        with self._lock:
            for label, (template_id, customer_id) in zip(labels.tolist(), keys):
                self._by_label[label] = (template_id, customer_id)
                self._labels_of.setdefault(customer_id, set()).add(label)
                self._label_of_template[template_id] = label
            self._next = max(self._next, int(labels.max(initial=0)) + 1)

    def template_ids(self) -> set[str]:
        with self._lock:
            return set(self._label_of_template)

    def remove_templates(self, template_ids) -> int:
        with self._lock:
            labels = []
            for template_id in template_ids:
                label = self._label_of_template.pop(template_id, None)
                if label is None:
                    continue
                _, customer_id = self._by_label.pop(label)
                owned = self._labels_of.get(customer_id, set())
                owned.discard(label)
                if not owned:
                    self._labels_of.pop(customer_id, None)
                labels.append(label)
        return self.index.remove(sorted(labels))

    def remove_customer(self, customer_id: str) -> int:
        with self._lock:
            labels = self._labels_of.pop(customer_id, set())
            for label in labels:
                template_id, _ = self._by_label.pop(label)
                self._label_of_template.pop(template_id, None)
        return self.index.remove(sorted(labels))

    def search(self, embedding: np.ndarray, k: int = 10, max_distance: float = np.inf,
               exclude_customer: str | None = None) -> list[Hit]:
        """The nearest templates within `max_distance`, nearest first (`exclude_customer`'s own left out)."""
        extra = len(self._labels_of.get(exclude_customer, ())) if exclude_customer else 0
        distances, labels = self.index.search(embedding, k + extra)
        hits = []
        with self._lock:
            for d, label in zip(distances[0], labels[0]):
                owner = self._by_label.get(int(label))
                if owner is None or d > max_distance or owner[1] == exclude_customer:
                    continue
                hits.append(Hit(owner[0], owner[1], float(d)))
        return hits[:k]
