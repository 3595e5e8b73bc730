"""The ops report: one self-contained HTML page on churn, risk and the CRM alert list.

`history` reads the workspace (DuckDB over the clean Parquet files), `tables` computes the numbers
and tables (pure), `figures` draws them, and `page.build_report` renders the page from
`crm/templates/ops_report.html`.
"""
