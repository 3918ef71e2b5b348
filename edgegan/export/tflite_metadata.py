"""Post-processing of a converted TFLite flatbuffer: metadata entries (the edgegan contract) and short
tensor names, rebuilt with the schema's object API (split from ``litert_adapter``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgegan.errors import ExportError


def add_metadata(model: bytes, entries: dict[str, str], *, short_names: bool = False) -> bytes:
    """``model`` with one Model.metadata entry per item, each naming a new buffer that holds the UTF-8
    value (an entry of the same name is replaced). This is the flatbuffer ``metadata`` that LiteRT reads
    (C++ ``Interpreter::metadata()``; any flatbuffer reader of the schema). Rebuilt with the schema's
    object API, as ai-edge-quantizer writes its output. ``short_names``: see ``_shorten_names``."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    if short_names:
        _shorten_names(m)
    for b in m.buffers or []:
        # ai-edge-quantizer 0.10 appends the constants after the flatbuffer (offset, size) once they pass
        # 256 KiB (a d=32 student): they are taken back inside, the layout every reader accepts.
        if (b.offset or 0) > 1:
            end = b.offset + (b.size or 0)
            if end > len(model):
                raise ExportError("the converter wrote a buffer past the end of the file; cannot add metadata")
            b.data = np.frombuffer(model, dtype=np.uint8, count=b.size, offset=b.offset).copy()
            b.offset, b.size = 0, 0
    m.metadata = [md for md in m.metadata or []
                  if (md.name.decode() if isinstance(md.name, bytes) else md.name) not in entries]
    m.buffers = list(m.buffers or [])
    for name, value in entries.items():
        buf = schema.BufferT()
        buf.data = np.frombuffer(value.encode("utf-8"), dtype=np.uint8).copy()
        m.buffers.append(buf)
        md = schema.MetadataT()
        md.name = name
        md.buffer = len(m.buffers) - 1
        m.metadata.append(md)
    b = flatbuffers.Builder(len(model) + 4096)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


SHORT_NAME = 48  # tensor names up to this long are kept as they are


def _shorten_names(m: Any) -> None:
    """Rename the tensors of a shipped file by the PyTorch modules that compute them (``net.9#14``).

    litert-torch names each tensor by its whole module scope (``edgegan.export.prepare.LatentToImage/
    edgegan.models.dcgan.DCGANGenerator_generator/torch.nn.modules...``, 200-400 bytes): in a d=2 student
    that is a quarter of an int8 file (10 KB of 39 KB). The exporter reads the long names (the per-layer
    report, --keep-float) before this; signatures refer to tensors by index, so nothing that runs the file
    changes."""
    from edgegan.export import quant_report

    for sg in m.subgraphs or []:
        for i, t in enumerate(sg.tensors or []):
            name = t.name.decode() if isinstance(t.name, bytes) else str(t.name or "")
            if len(name) <= SHORT_NAME:
                continue
            mods = quant_report.modules_of(name)
            t.name = f"{'+'.join(mods)[:SHORT_NAME - 8] if mods else 't'}#{i}"
