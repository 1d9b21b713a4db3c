"""Usage reports: offline from invocation log files (`meter`) and from the rollups table (`report`).

sources    paths and `s3://` URIs turned into log lines; the teams file; application profiles
scanning   every line metered by `Meter.meter` (the usage calculator's own figures) into a sink
filters    which records a report keeps (ARN glob, time bounds); the options both commands share
aggregation  `UsageReport`: one exact `Totals` per combination of group values
rows       the rows printed (through the one renderer), `--top`, `--max-rows`, the comparison
rollups    the report window, the window before it, and the usage lines of the rollups table
html       the one-file HTML report: charts as inline SVG, a table under each
"""
