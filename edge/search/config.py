"""The `[search]` section: the 1:N face index and the network scan (edge.search)."""
from __future__ import annotations

from pydantic import Field

from edge.sections import Section


class SearchConfig(Section):
    """1:N face search and cash-out network detection (edge.search)."""

    ivf_from: int = Field(50_000, ge=1000, description="templates from which the index is IVF instead of a flat scan")
    nprobe: int = Field(600, ge=1, le=4096,
                        description="IVF lists visited per query (of 2 sqrt(templates); 600 of 2,000 at a million "
                                    "gives recall@10 0.99, `biogate bench search`)")
    link_target_rate: float = Field(1e-5, gt=0, lt=0.1,
                                    description="false-link rate per pair of different people the face-link "
                                                "threshold is chosen for (read off the calibrated face LLRs)")
    min_cards: int = Field(3, ge=2, description="distinct cards' holders one face must present to be a finding")
    min_faces_per_card: int = Field(2, ge=2, description="distinct faces on one card to be a finding")
    window_days: int = Field(30, ge=1, le=180, description="the scan looks at attempts this many days back")
