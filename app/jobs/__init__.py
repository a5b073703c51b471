"""Jobs: scoring, verification and rescoring, each leased on its own database row.

The database is the truth; the queue only says "look at row N of kind K". Every kind shares one
lease (`lease`), one runner that maps a job's outcome onto its row (`runner`) and one reaper
(`reaper`). The jobs receive an `enqueue` callable in their context and never import the queue
(`queue`), which imports them.
"""
