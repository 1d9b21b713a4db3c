"""Budget rules: levels, threshold crossings and forecasts (rules), and what a deny for a scope
reaches and whom protection spares (targets). Pure. Imports domain and core.
"""
