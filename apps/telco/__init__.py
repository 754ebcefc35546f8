"""Nimbus Telecom's own business system: the demo company's plans, accounts, bills, orders and tickets."""
