"""Passive presentation-attack detection model: training (`train`), the classifier maths (`classifier`)
and the ONNX builder (`build`). The committed `weights.json` is the trained model; the ONNX file is
built from it by `build.build_onnx` without needing any data.

May import: the product (edge.biometrics, edge.evaluation) and models.manifest: a tool above it.
"""
