"""Every report edgezoo writes, in one place: report.json (json_report, with its schemas/), report.html (html)
and the inline plots the pages draw (plots). Rendered from the report dictionaries alone."""
