"""From a Firehose batch to priced, attributed usage written exactly once: the meter, usage deltas
and their table updates, the exactly-once writer, the usage calculator and its repository, the caps
on what callers mint, usage lines, the archive and redrive, and the re-pricing of estimated usage.
Imports enforcement (to start runs), pricing, notify, storage, budgets, domain and core.
"""
