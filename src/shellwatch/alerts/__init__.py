"""Alerts: a rule's match on an event, as Kibana's security alert document."""
