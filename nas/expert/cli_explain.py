"""``hwnas expert explain`` and ``hwnas expert apply`` (registered on :data:`expert_app`)."""

from __future__ import annotations

from nas.expert.app import expert_app  # noqa: F401
