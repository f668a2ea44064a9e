"""Differential-privacy building blocks: bounds, OpenDP mechanisms, budget, partition selection."""
