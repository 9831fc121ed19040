"""Lore's ingest layer. Importing it makes the process offline: no library may phone home or download.

Set before any of them loads (ingest is imported first by every Lore entry point, and parser worker
processes inherit the environment): ONNX Runtime's 1DS telemetry (both spellings of its opt-out),
Chroma's, Hugging Face hub downloads and their telemetry. A value the operator set is kept.
"""

import os

for _name, _value in (("ORT_DISABLE_TELEMETRY", "1"), ("ORT_TELEMETRY_DISABLED", "1"),
                      ("ANONYMIZED_TELEMETRY", "False"), ("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                      ("HF_HUB_DISABLE_TELEMETRY", "1"), ("DO_NOT_TRACK", "1"), ("SCARF_NO_ANALYTICS", "true")):
    os.environ.setdefault(_name, _value)
