"""Evaluation: datasets × strategies × budgets, a resumable store, metrics, plots and reports."""
