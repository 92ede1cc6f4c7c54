"""The face embedder fine-tuned for faces the restoration worked on (`[face] restored_embedder_for`).

`train` fine-tunes the float network through `graph` (its ONNX graph run by torch) and writes the committed
`weights.npz` through `weights`; models/build/embedder_restored.py adds those changes back into the float network at
`make models`, with numpy alone (torch is needed for training only).

May import: the product (edge.biometrics, edge.evaluation) and models.manifest: a tool above it.
"""
