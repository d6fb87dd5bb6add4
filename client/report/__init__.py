"""What stored records become.

tables.py (a flat CSV, a Markdown table, values side by side with ratios), charts.py (charts as data: one
ChartSpec row per chart, one draw function, shared with the study), sweep_charts.py (the report's charts),
report.py (`tritonbench report`: all of them in one folder) and sorting.py (a sort key that tolerates None).
"""
