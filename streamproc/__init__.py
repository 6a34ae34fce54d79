"""streamproc: lead enrichment between Kafka topics that survives outages, bills and crashes.

The public surface is the CLI (``streamproc``), the settings model and the record models;
everything else is internal.
"""

from streamproc.records.lead import EnrichedLead, EnrichmentMeta, Lead
from streamproc.settings import Settings, load_settings

__version__ = "0.2.0"

__all__ = ["EnrichedLead", "EnrichmentMeta", "Lead", "Settings", "__version__", "load_settings"]
