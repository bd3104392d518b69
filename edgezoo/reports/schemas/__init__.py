"""JSON schemas of edgezoo's reports (see edgezoo/reports/json_report.py and docs/report-schema.md)."""
