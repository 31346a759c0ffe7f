"""The spec format: one pydantic model per kind (see `kinds`) built from shared parts (`common`)."""

from agent_platform._spec.kinds import DOCUMENT_MODELS, KINDS, AnyDocument, SpecDocument

__all__ = ["DOCUMENT_MODELS", "KINDS", "AnyDocument", "SpecDocument"]
