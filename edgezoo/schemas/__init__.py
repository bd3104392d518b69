"""JSON schemas of edgezoo's reports (see edgezoo/report.py and docs/report-schema.md)."""
