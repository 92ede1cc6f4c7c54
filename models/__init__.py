"""Model artefacts of biogate: the committed manifest (manifest.json, read through models.manifest), the model
card (MODEL_CARD.md) and the build (models.build) that makes models/artifacts/ from registry packages."""
