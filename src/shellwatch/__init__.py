"""shellwatch: Elastic EQL and Sigma detection rules over Windows event logs and EDR exports."""

__version__ = "0.1.0"
