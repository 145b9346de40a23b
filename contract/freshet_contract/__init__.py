"""The operator ⇄ trainer run contract (``freshet.dev/run/v1``), shared by both sides.

The operator and the training Job it starts agree on exactly these things, so
they are written once, here:

- ``run``: the RunSpec the operator writes before it creates a Job;
- ``result``: the RunResult the trainer writes as its last step;
- ``vocabulary``: the enumerations and constrained values both documents use;
- ``document``: how a document is read (tolerantly) and written (no nulls);
- ``layout``: where a policy's state lives in its bucket;
- ``env``: the environment variables the operator sets and the trainer reads.

``contract/README.md`` is the human description; ``tests/unit/test_contract_skew.py``
checks that this version and the previous release read each other's documents.
"""

from __future__ import annotations

from freshet_contract.document import API_VERSION, Document, to_document, to_json_bytes

__all__ = ["API_VERSION", "Document", "to_document", "to_json_bytes"]
