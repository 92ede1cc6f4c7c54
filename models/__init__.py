"""Model artefacts of biogate: the committed manifest (manifest.json, read through models.manifest), the model
card (MODEL_CARD.md) and the build (models.build) that makes models/artifacts/ from registry packages.

Layers: `models.manifest` is low (edge.models reads it; it imports nothing of biogate); `models.build` and
`models.pad` (training) are tools that stand above the product and may import it.
"""
