"""Provincial administrative-reform warehouse: the logic the Airflow DAGs and the CLI call."""

__version__ = "0.1.0"
