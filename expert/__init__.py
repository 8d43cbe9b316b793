"""The privileged rule-based expert driver (``ExpertDriver``) and its evaluation (``python -m expert.evaluate``)."""

from expert.config import ExpertConfig
from expert.driver import ExpertDriver

__all__ = ["ExpertConfig", "ExpertDriver"]
