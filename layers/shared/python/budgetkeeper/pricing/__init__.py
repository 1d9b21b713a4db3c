"""What a call costs: the price table and its matching rules (table), the one pricing function
(rates), application inference profiles (profiles), the AWS Price List normaliser (price_list) and
the activated price versions (versions). Imports notify, storage, budgets, domain and core.
"""
