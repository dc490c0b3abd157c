"""The `pdf` pipeline: crystal structures -> pair distribution functions G(r) -> space-group classifiers.

Science modules here never import Dagster; `defs.py` wires them into assets.
"""
