"""Simulation, counterfactuals and Monte Carlo studies."""
