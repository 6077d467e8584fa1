"""The session: the document a user works on, observable through callbacks, no Qt."""
from .core import Session
from .prompts import Prompt, PromptHistory, PromptKind

__all__ = ["Session", "Prompt", "PromptHistory", "PromptKind"]
