"""From a Firehose batch to priced, attributed usage written exactly once: the meter, the usage
calculator and its writer, the caps on what callers mint, usage lines, the archive and redrive,
and the re-pricing of estimated usage. Imports pricing, storage, budgets, domain and core.
"""
