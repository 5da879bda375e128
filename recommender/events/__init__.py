"""The feedback loop: impressions and clicks the widget reports, their durable store, A/B variant assignment and
the report. Public face: :class:`~.log.EventLog`, :class:`~.log.EventReader`, :func:`~.variants.assign_variant`,
:func:`~.report.report_for_index`."""

from recommender.events.log import EventLog, EventReader
from recommender.events.report import report_for_index
from recommender.events.variants import assign_variant

__all__ = ["EventLog", "EventReader", "assign_variant", "report_for_index"]
