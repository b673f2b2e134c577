"""Reports: plots, tables and ``report.html``/``report.md`` from a results folder.

Reads only the files a run wrote (never the running simulation), so a report
can be rebuilt at any time with ``simulate report RUN_DIR``.
"""
