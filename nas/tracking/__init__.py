"""MLflow tracking of searches, in three layers that need no Ray:

- :mod:`nas.tracking.store`: experiments, runs, paged reads and how to browse them in the UI;
- :mod:`nas.tracking.text`: what a person reads there (trial run names, the search's summary);
- :mod:`nas.tracking.tracker`: :class:`SearchTracker`, the MLflow runs of one search;

and :mod:`nas.tracking.callback`, the Ray Tune callback that feeds a tracker (imports Ray).
"""

from nas.tracking.store import all_runs, check_tracking_uri, experiment_id, ui_hint
from nas.tracking.tracker import FRONT_KEYS, SearchTracker, normalized_hypervolume

__all__ = ["FRONT_KEYS", "SearchTracker", "all_runs", "check_tracking_uri", "experiment_id",
           "normalized_hypervolume", "ui_hint"]
