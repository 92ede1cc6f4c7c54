"""1:N face search and cash-out network detection (issue 12).

    index      FaceIndex: faiss fp16 codes (flat, or IVF at scale) over 128-d embeddings, int64 ids that can be removed;
               TemplateIndex: the same keyed by template / customer ids (what enrolment and the scan use)
    thresholds the face-link threshold read from the calibrated face LLRs, with the false-link rate it implies
    networks   pure analysis: attempts (probe embedding, card, holder, terminal, time) -> "one person, many
               cards", "one card, many people", joined into networks with a score and a plain explanation
    oversight  purposes, case references, pseudonyms, the two-person reveal
    service    SearchService: the index built from sealed templates and kept current, duplicate search at
               enrolment, the investigator's scan and search (every search and every viewed result audited)
    synthetic  embeddings for the scale benchmark, drawn with the spectra measured on development faces
    bench      `biogate bench search`: index size, build time, single-query latency, recall against exact search

The index never holds an image, only embeddings, and only in memory (rebuilt from the sealed store at start).
May import: edge.decision, edge.store, edge.audit, edge.errors, edge.sections. Never edge.service, edge.cli or
the simulator.
"""
