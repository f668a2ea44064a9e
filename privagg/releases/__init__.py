"""Public release functions: footfall, visits, dwell times, OD flows, segment statistics."""
