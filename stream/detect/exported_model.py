"""Finding an exported model's files and metadata: an OpenVINO IR directory (one .xml and
Ultralytics' metadata.yaml) or an ONNX file (metadata in its properties)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def exported_model_files(path: str) -> tuple[Path, dict[str, Any]] | None:
    """(model file, metadata) of an OpenVINO export directory or an ONNX file; None for
    anything else (.pt, TensorRT, ...), which stays with Ultralytics."""
    p = Path(path)
    if p.is_dir():
        xmls = sorted(p.glob("*.xml"))
        meta = p / "metadata.yaml"
        if len(xmls) == 1 and meta.is_file():
            return xmls[0], yaml.safe_load(meta.read_text()) or {}
        return None
    if p.suffix == ".onnx" and p.is_file():
        import onnx

        props = onnx.load(str(p), load_external_data=False).metadata_props
        meta = {}
        for prop in props:  # Ultralytics writes Python literals as strings
            try:
                meta[prop.key] = yaml.safe_load(prop.value)
            except yaml.YAMLError:
                meta[prop.key] = prop.value
        return p, meta
    return None
