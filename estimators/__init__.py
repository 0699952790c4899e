"""Estimators of dynamic discrete choice models."""
